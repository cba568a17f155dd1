// Span counting for the benchmark's OTLP sink (otlp-sink.ts), apart so it can
// be checked against real exporter payloads without starting a server.
// Cheap on purpose:
//   - protobuf: no decoding, a walk over length-delimited fields only:
//     ExportTraceServiceRequest{1: ResourceSpans{2: ScopeSpans{2: Span}}};
//   - JSON: JSON.parse and sum resourceSpans[].scopeSpans[].spans.length.

class MalformedProtobuf extends Error {}

/**
 * Calls `onField(start, end)` for every length-delimited occurrence of field
 * `want` in buf[start, end), skipping all other fields by wire type.
 */
function eachLenField(buf: Buffer, start: number, end: number, want: number, onField: (s: number, e: number) => void): void {
  let p = start
  while (p < end) {
    // Tag varint: field number and wire type.
    let tag = 0
    let scale = 1
    let b: number
    do {
      if (p >= end) throw new MalformedProtobuf('truncated tag')
      b = buf[p++]!
      tag += (b & 0x7f) * scale
      scale *= 128
    } while (b >= 0x80)
    const wire = tag % 8
    const field = Math.floor(tag / 8)
    switch (wire) {
      case 0: // varint
        while (true) {
          if (p >= end) throw new MalformedProtobuf('truncated varint')
          if (buf[p++]! < 0x80) break
        }
        break
      case 1: // fixed64
        p += 8
        break
      case 5: // fixed32
        p += 4
        break
      case 2: {
        let len = 0
        scale = 1
        do {
          if (p >= end) throw new MalformedProtobuf('truncated length')
          b = buf[p++]!
          len += (b & 0x7f) * scale
          scale *= 128
        } while (b >= 0x80)
        const e = p + len
        if (e > end) throw new MalformedProtobuf('length beyond the message')
        if (field === want) onField(p, e)
        p = e
        break
      }
      default:
        throw new MalformedProtobuf(`wire type ${wire}`)
    }
    if (p > end) throw new MalformedProtobuf('field beyond the message')
  }
}

/** Spans in an ExportTraceServiceRequest, protobuf. */
export function countProtobufSpans(buf: Buffer): number {
  let n = 0
  const onSpan = (): void => {
    n++
  }
  eachLenField(buf, 0, buf.length, 1, (rs, re) =>
    eachLenField(buf, rs, re, 2, (ss, se) => eachLenField(buf, ss, se, 2, onSpan)),
  )
  return n
}

interface JsonRequest {
  resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: unknown[] }> }>
}

/** Spans in an ExportTraceServiceRequest, OTLP/JSON. */
export function countJsonSpans(body: Buffer): number {
  const req = JSON.parse(body.toString('utf8')) as JsonRequest
  let n = 0
  for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0
  return n
}
