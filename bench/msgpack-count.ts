// Spans in a Datadog trace payload (PUT/POST /v0.4/traces, MessagePack): an
// array of traces, each an array of spans. What the benchmark's sink needs
// to count the spans of HAProxy's OpenTracing filter with the Datadog tracer
// plugin, without decoding them: array headers are read, every other value
// is skipped by its MessagePack type byte.

/** Spans in a v0.4 payload; throws on a malformed one. */
export function countMsgpackSpans(b: Uint8Array): number {
  const r = { i: 0 }
  const traces = arrayHeader(b, r)
  let spans = 0
  for (let t = 0; t < traces; t++) {
    const n = arrayHeader(b, r)
    spans += n
    for (let s = 0; s < n; s++) skip(b, r)
  }
  return spans
}

function need(b: Uint8Array, r: { i: number }, n: number): void {
  if (r.i + n > b.length) throw new Error('truncated MessagePack')
}

function uint(b: Uint8Array, r: { i: number }, bytes: number): number {
  need(b, r, bytes)
  let v = 0
  for (let k = 0; k < bytes; k++) v = v * 256 + b[r.i + k]!
  r.i += bytes
  return v
}

function arrayHeader(b: Uint8Array, r: { i: number }): number {
  need(b, r, 1)
  const c = b[r.i++]!
  if (c >= 0x90 && c <= 0x9f) return c & 0x0f
  if (c === 0xdc) return uint(b, r, 2)
  if (c === 0xdd) return uint(b, r, 4)
  throw new Error(`expected a MessagePack array, got type byte 0x${c.toString(16)}`)
}

function skip(b: Uint8Array, r: { i: number }): void {
  need(b, r, 1)
  const c = b[r.i++]!
  let n = 0
  if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) return
  if (c >= 0x80 && c <= 0x8f) n = (c & 0x0f) * 2
  else if (c >= 0x90 && c <= 0x9f) n = c & 0x0f
  else if (c >= 0xa0 && c <= 0xbf) return void (r.i += c & 0x1f, need(b, r, 0))
  else {
    switch (c) {
      case 0xc4: case 0xd9: r.i += uint(b, r, 1); return need(b, r, 0)
      case 0xc5: case 0xda: r.i += uint(b, r, 2); return need(b, r, 0)
      case 0xc6: case 0xdb: r.i += uint(b, r, 4); return need(b, r, 0)
      case 0xc7: r.i += uint(b, r, 1) + 1; return need(b, r, 0)
      case 0xc8: r.i += uint(b, r, 2) + 1; return need(b, r, 0)
      case 0xc9: r.i += uint(b, r, 4) + 1; return need(b, r, 0)
      case 0xca: r.i += 4; return need(b, r, 0)
      case 0xcb: r.i += 8; return need(b, r, 0)
      case 0xcc: case 0xd0: r.i += 1; return need(b, r, 0)
      case 0xcd: case 0xd1: r.i += 2; return need(b, r, 0)
      case 0xce: case 0xd2: r.i += 4; return need(b, r, 0)
      case 0xcf: case 0xd3: r.i += 8; return need(b, r, 0)
      case 0xd4: r.i += 2; return need(b, r, 0)
      case 0xd5: r.i += 3; return need(b, r, 0)
      case 0xd6: r.i += 5; return need(b, r, 0)
      case 0xd7: r.i += 9; return need(b, r, 0)
      case 0xd8: r.i += 17; return need(b, r, 0)
      case 0xdc: n = uint(b, r, 2); break
      case 0xdd: n = uint(b, r, 4); break
      case 0xde: n = uint(b, r, 2) * 2; break
      case 0xdf: n = uint(b, r, 4) * 2; break
      default: throw new Error(`bad MessagePack type byte 0x${c.toString(16)}`)
    }
  }
  for (let k = 0; k < n; k++) skip(b, r)
}
