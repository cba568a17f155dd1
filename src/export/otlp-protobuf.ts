// OTLP/protobuf (ExportTraceServiceRequest) written straight from our span
// records, for the http/protobuf exporter. The OpenTelemetry serializer needs
// ReadableSpan objects and turns every hex id back into bytes in JavaScript;
// together that was a third of an export worker's time. Here ids go from hex
// to bytes natively (Buffer#write), the resource and scope blocks of each
// HAProxy engine are encoded once, and the keys and names that repeat in
// every span are cached as bytes. test/export/otlp-protobuf.test.ts checks
// the output byte for byte against the OpenTelemetry serializer.
//
// Field numbers (opentelemetry-proto, collector/trace/v1 and trace/v1):
//   ExportTraceServiceRequest { 1 resource_spans }
//   ResourceSpans { 1 resource, 2 scope_spans }     Resource { 1 attributes, 2 dropped }
//   ScopeSpans { 1 scope, 2 spans }                 InstrumentationScope { 1 name, 2 version }
//   Span { 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
//          7 start fixed64, 8 end fixed64, 9 attributes, 10 dropped_attributes,
//          11 events, 12 dropped_events, 13 links, 14 dropped_links, 15 status, 16 flags fixed32 }
//   Event { 1 time fixed64, 2 name, 3 attributes, 4 dropped }
//   Link { 1 trace_id, 2 span_id, 3 trace_state, 4 attributes, 5 dropped, 6 flags fixed32 }
//   Status { 2 message, 3 code }    KeyValue { 1 key, 2 value }
//   AnyValue { 1 string, 2 bool, 3 int64, 4 double }

import type { AttrValue, Attributes, FinishedSpan, SpanKindName } from '../tracing/types.js'

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LEN = 2
const WIRE_FIXED32 = 5

/** OTLP's SpanKind enum (the API's enum plus one). */
const KIND: Record<SpanKindName, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 }

/** W3C trace flags plus "has is_remote" (0x100), and "is_remote" (0x200) when so. */
const spanFlags = (traceFlags: number, isRemote: boolean): number => (traceFlags & 0xff) | 0x100 | (isRemote ? 0x200 : 0)

/** Value of a hex digit by char code, -1 for anything else. */
const HEX_VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < 16; i++) {
  HEX_VALUE[i.toString(16).charCodeAt(0)] = i
  HEX_VALUE[i.toString(16).toUpperCase().charCodeAt(0)] = i
}

/**
 * Hex digits as bytes, in JavaScript: ids are 16 or 32 digits, where a
 * native Buffer#write costs more than the work. False (nothing to rely on
 * written) at the first char that is not a hex digit: the caller then uses
 * Buffer#write, whose handling of bad input stays the reference.
 */
function writeHex(buf: Buffer, at: number, hex: string): boolean {
  const n = hex.length >>> 1
  for (let i = 0; i < n; i++) {
    const c1 = hex.charCodeAt(2 * i)
    const c2 = hex.charCodeAt(2 * i + 1)
    const hi = c1 < 128 ? HEX_VALUE[c1]! : -1
    const lo = c2 < 128 ? HEX_VALUE[c2]! : -1
    if ((hi | lo) < 0) return false
    buf[at + i] = (hi << 4) | lo
  }
  return true
}

let lastHex = ''
let lastBytes: Buffer = Buffer.alloc(0)

/** Encoded bytes of short, repeating strings (attribute keys, span names, values like "GET"). */
const stringCache = new Map<string, Buffer>()

class ProtoWriter {
  buf: Buffer
  pos = 0

  private readonly unpooled: boolean

  /** `into`: write into this buffer (at least `size` bytes) instead of a new one. */
  constructor(size = 64 * 1024, unpooled = false, into?: Buffer) {
    this.unpooled = unpooled
    this.buf = into ?? (unpooled ? Buffer.allocUnsafeSlow(Math.max(16, size)) : Buffer.allocUnsafe(Math.max(16, size)))
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = this.unpooled ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  tag(field: number, wire: number): void {
    this.varint32((field << 3) | wire)
  }

  varint32(v: number): void {
    this.ensure(5)
    const b = this.buf
    while (v > 0x7f) {
      b[this.pos++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    b[this.pos++] = v
  }

  /** An int64 varint; negative values take 10 bytes (two's complement). */
  varint64(v: number): void {
    if (v >= 0 && v <= 0xffffffff) return this.varint32(v)
    this.ensure(10)
    let lo: number
    let hi: number
    if (v >= 0) {
      lo = v >>> 0
      hi = Math.floor(v / 0x100000000) >>> 0
    } else {
      const a = -v
      lo = a >>> 0
      hi = Math.floor(a / 0x100000000) >>> 0
      // Two's complement of the 64-bit magnitude.
      lo = ~lo >>> 0
      hi = ~hi >>> 0
      if (lo === 0xffffffff) {
        lo = 0
        hi = (hi + 1) >>> 0
      } else {
        lo = lo + 1
      }
    }
    const b = this.buf
    while (hi > 0 || lo > 0x7f) {
      b[this.pos++] = (lo & 0x7f) | 0x80
      lo = ((lo >>> 7) | (hi << 25)) >>> 0
      hi >>>= 7
    }
    b[this.pos++] = lo
  }

  fixed32(v: number): void {
    this.ensure(4)
    this.buf.writeUInt32LE(v >>> 0, this.pos)
    this.pos += 4
  }

  /** Epoch microseconds as fixed64 nanoseconds, exact (us < 2^53, ns up to 2^64). */
  timeUs(us: number): void {
    this.ensure(8)
    const a = Math.floor(us / 0x100000000)
    const b = us - a * 0x100000000
    const lowFull = b * 1000 // < 2^42: exact
    const lo = lowFull % 0x100000000
    const hi = a * 1000 + Math.floor(lowFull / 0x100000000)
    this.buf.writeUInt32LE(lo >>> 0, this.pos)
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4)
    this.pos += 8
  }

  double(v: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(v, this.pos)
    this.pos += 8
  }

  /**
   * A length-delimited UTF-8 string. `name`: a key or a name, which repeats
   * from span to span and is worth caching; values (ids, URLs) are not.
   */
  string(s: string, name = false): void {
    if (name && s.length <= 64) {
      let bytes = stringCache.get(s)
      if (bytes === undefined) {
        if (stringCache.size >= 8192) stringCache.clear()
        bytes = Buffer.from(s, 'utf8')
        stringCache.set(s, bytes)
      }
      this.varint32(bytes.length)
      this.ensure(bytes.length)
      this.buf.set(bytes, this.pos)
      this.pos += bytes.length
      return
    }
    const n = s.length
    if (n < 0x80) {
      // Most values are short ASCII (methods, paths, addresses): copied here
      // char by char, which costs less than Buffer's two native calls
      // (byteLength, write); the first non-ASCII char falls back to them.
      this.ensure(n + 1)
      const b = this.buf
      const at = this.pos + 1
      let i = 0
      for (; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) break
        b[at + i] = c
      }
      if (i === n) {
        b[this.pos] = n
        this.pos = at + n
        return
      }
    }
    const len = Buffer.byteLength(s)
    this.varint32(len)
    this.ensure(len)
    this.pos += this.buf.write(s, this.pos, len, 'utf8')
  }

  /**
   * Length-delimited bytes of a hex id (16 or 8 bytes). The spans of a tree
   * come together and share their trace id: the last one decoded is kept.
   */
  hexId(hex: string): void {
    const n = hex.length >>> 1
    this.varint32(n)
    this.ensure(n)
    if (hex === lastHex) {
      this.buf.set(lastBytes, this.pos)
      this.pos += n
      return
    }
    this.pos += writeHex(this.buf, this.pos, hex) ? n : this.buf.write(hex, this.pos, n, 'hex')
    if (n === 16) {
      lastHex = hex
      lastBytes = Buffer.from(this.buf.subarray(this.pos - n, this.pos))
    }
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
  }

  /** Reserves one byte for a length; finish() moves the body if it needs more. */
  begin(): number {
    this.ensure(1)
    return this.pos++
  }

  finish(at: number): void {
    const len = this.pos - at - 1
    if (len < 0x80) {
      this.buf[at] = len
      return
    }
    let size = 2
    for (let v = len >>> 14; v > 0; v >>>= 7) size++
    this.ensure(size - 1)
    this.buf.copy(this.buf, at + size, at + 1, this.pos)
    this.pos += size - 1
    let v = len
    let p = at
    while (v > 0x7f) {
      this.buf[p++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    this.buf[p] = v
  }

  /** A nested message: tag, length, body. */
  message(field: number, body: () => void): void {
    this.tag(field, WIRE_LEN)
    const at = this.begin()
    body()
    this.finish(at)
  }
}

function writeAttributes(w: ProtoWriter, field: number, attrs: Attributes): void {
  for (const key in attrs) {
    const value = attrs[key]
    if (value === undefined) continue
    w.tag(field, WIRE_LEN)
    const kv = w.begin()
    w.tag(1, WIRE_LEN)
    w.string(key, true)
    w.tag(2, WIRE_LEN)
    const any = w.begin()
    writeAnyValue(w, value)
    w.finish(any)
    w.finish(kv)
  }
}

function writeAnyValue(w: ProtoWriter, v: AttrValue): void {
  if (typeof v === 'string') {
    w.tag(1, WIRE_LEN)
    w.string(v)
  } else if (typeof v === 'boolean') {
    w.tag(2, WIRE_VARINT)
    w.varint32(v ? 1 : 0)
  } else if (Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63) {
    w.tag(3, WIRE_VARINT)
    w.varint64(v)
  } else {
    w.tag(4, WIRE_FIXED64)
    w.double(v)
  }
}

function writeSpan(w: ProtoWriter, s: FinishedSpan): void {
  w.tag(1, WIRE_LEN)
  w.hexId(s.traceId)
  w.tag(2, WIRE_LEN)
  w.hexId(s.spanId)
  if (s.traceState !== '') {
    w.tag(3, WIRE_LEN)
    w.string(s.traceState)
  }
  if (s.parentSpanId !== '') {
    w.tag(4, WIRE_LEN)
    w.hexId(s.parentSpanId)
  }
  w.tag(5, WIRE_LEN)
  w.string(s.name, true)
  w.tag(6, WIRE_VARINT)
  w.varint32(KIND[s.kind])
  w.tag(7, WIRE_FIXED64)
  w.timeUs(s.startUs)
  w.tag(8, WIRE_FIXED64)
  w.timeUs(s.endUs)
  writeAttributes(w, 9, s.attributes)
  w.tag(10, WIRE_VARINT)
  w.varint32(s.droppedAttributes)
  for (const e of s.events) {
    w.tag(11, WIRE_LEN)
    const at = w.begin()
    w.tag(1, WIRE_FIXED64)
    w.timeUs(e.timeUs)
    w.tag(2, WIRE_LEN)
    w.string(e.name, true)
    writeAttributes(w, 3, e.attributes)
    w.tag(4, WIRE_VARINT)
    w.varint32(0)
    w.finish(at)
  }
  w.tag(12, WIRE_VARINT)
  w.varint32(s.droppedEvents)
  for (const l of s.links) {
    w.tag(13, WIRE_LEN)
    const at = w.begin()
    w.tag(1, WIRE_LEN)
    w.hexId(l.traceId)
    w.tag(2, WIRE_LEN)
    w.hexId(l.spanId)
    writeAttributes(w, 4, l.attributes)
    w.tag(5, WIRE_VARINT)
    w.varint32(0)
    w.tag(6, WIRE_FIXED32)
    w.fixed32(spanFlags(s.traceFlags, false))
    w.finish(at)
  }
  w.tag(14, WIRE_VARINT)
  w.varint32(s.droppedLinks)
  w.tag(15, WIRE_LEN)
  const st = w.begin()
  if (s.status.message !== '') {
    w.tag(2, WIRE_LEN)
    w.string(s.status.message, true)
  }
  w.tag(3, WIRE_VARINT)
  w.varint32(s.status.code)
  w.finish(st)
  w.tag(16, WIRE_FIXED32)
  w.fixed32(spanFlags(s.traceFlags, s.parentIsRemote))
}

export interface EncoderOptions {
  /** Our resource attributes (service.name, OTEL_RESOURCE_ATTRIBUTES, ...), in order. */
  resource: Record<string, string>
  /** The SDK's default attributes (telemetry.sdk.*), added after ours unless we set them. */
  defaults: Record<string, AttrValue>
  scope: { name: string; version: string }
  /**
   * Where a request's bytes go: a buffer of at least `size` bytes at offset
   * 0 of an ArrayBuffer of its own (the span queue's BodyPool). By default a
   * new one of exactly that size.
   */
  alloc?: (size: number) => Buffer
}

/**
 * Builds one ExportTraceServiceRequest incrementally: spans are encoded as
 * they are added (into one buffer per engine-id, i.e. per Resource), and
 * take() assembles the request in a single pass. This is what lets the main
 * thread encode each completed tree once, off the ACK path, and hand the
 * bytes to a worker without copying.
 */
export class OtlpBatchBuilder {
  private readonly opts: EncoderOptions
  /** Encoded Resource message (tag, length, body), per engine-id. */
  private readonly heads = new Map<string, Buffer>()
  /** Encoded `2: Span` entries, per engine-id, in order of first appearance. */
  private readonly bodies = new Map<string | null, ProtoWriter>()
  private scopeBytes: Buffer | null = null
  private count = 0

  constructor(opts: EncoderOptions) {
    this.opts = opts
  }

  /** Spans added since the last take(). */
  get spans(): number {
    return this.count
  }

  add(spans: readonly FinishedSpan[]): void {
    let engine: string | null | undefined
    let w: ProtoWriter | undefined
    for (const s of spans) {
      if (s.engineId !== engine || w === undefined) {
        engine = s.engineId
        w = this.bodies.get(engine)
        if (w === undefined) {
          w = new ProtoWriter(4096)
          this.bodies.set(engine, w)
        }
      }
      w.tag(2, WIRE_LEN)
      const at = w.begin()
      writeSpan(w, s)
      w.finish(at)
    }
    this.count += spans.length
  }

  /** The request holding every span added so far, or null if there is none; starts a new one. */
  take(): Buffer | null {
    if (this.count === 0) return null
    const scope = this.scope()
    const parts: Array<{ head: Buffer; body: ProtoWriter; scopeSpansLen: number; resourceSpansLen: number }> = []
    let total = 0
    for (const [engineId, body] of this.bodies) {
      if (body.pos === 0) continue
      const head = this.head(engineId)
      const scopeSpansLen = scope.length + body.pos
      const resourceSpansLen = head.length + 1 + varintSize(scopeSpansLen) + scopeSpansLen
      total += 1 + varintSize(resourceSpansLen) + resourceSpansLen
      parts.push({ head, body, scopeSpansLen, resourceSpansLen })
    }
    // A buffer of its own (not a slice of Node's shared pool): it is transferred to a worker.
    const out = new ProtoWriter(total, true, this.opts.alloc?.(total))
    for (const p of parts) {
      out.tag(1, WIRE_LEN)
      out.varint32(p.resourceSpansLen)
      out.raw(p.head)
      out.tag(2, WIRE_LEN)
      out.varint32(p.scopeSpansLen)
      out.raw(scope)
      out.raw(p.body.buf.subarray(0, p.body.pos))
      p.body.pos = 0
    }
    this.count = 0
    return out.buf.subarray(0, out.pos)
  }

  /** `1: InstrumentationScope` inside ScopeSpans: the same for every request. */
  private scope(): Buffer {
    if (this.scopeBytes !== null) return this.scopeBytes
    const { scope } = this.opts
    const w = new ProtoWriter(256)
    w.message(1, () => {
      w.tag(1, WIRE_LEN)
      w.string(scope.name)
      if (scope.version !== '') {
        w.tag(2, WIRE_LEN)
        w.string(scope.version)
      }
    })
    this.scopeBytes = Buffer.from(w.buf.subarray(0, w.pos))
    return this.scopeBytes
  }

  /** `1: Resource` inside ResourceSpans, per engine. */
  private head(engineId: string | null): Buffer {
    const key = engineId ?? ''
    let h = this.heads.get(key)
    if (h !== undefined) return h
    if (this.heads.size >= 1024) this.heads.clear()
    const attrs: Attributes = { ...this.opts.resource }
    if (engineId !== null) attrs['haproxy.engine_id'] = engineId
    for (const [k, v] of Object.entries(this.opts.defaults)) if (!(k in attrs)) attrs[k] = v
    const w = new ProtoWriter(1024)
    w.message(1, () => {
      writeAttributes(w, 1, attrs)
      w.tag(2, WIRE_VARINT)
      w.varint32(0)
    })
    h = Buffer.from(w.buf.subarray(0, w.pos))
    this.heads.set(key, h)
    return h
  }
}

/** One-shot encoding of a batch (tests, and callers that have all spans at hand). */
export class OtlpProtobufEncoder {
  private readonly builder: OtlpBatchBuilder

  constructor(opts: EncoderOptions) {
    this.builder = new OtlpBatchBuilder(opts)
  }

  encode(spans: readonly FinishedSpan[]): Uint8Array {
    this.builder.add(spans)
    return Buffer.from(this.builder.take() ?? new Uint8Array(0))
  }
}

function varintSize(v: number): number {
  let n = 1
  while (v > 0x7f) {
    v >>>= 7
    n++
  }
  return n
}
