// Decoding what a tracing backend really receives: OTLP/JSON and
// OTLP/protobuf ExportTraceServiceRequests, into one normalized span shape
// (the test receiver, otlp-receiver.ts), or only counted (the benchmarks'
// sink, bench/otlp-sink.ts: a walk over the three enclosing messages, each
// span skipped by its length, so that counting stays far cheaper than the
// agent's encoding).
//
// Normalization, identical for both encodings:
//   ids            lowercase hex; '' when absent (parentSpanId of a root span)
//   timestamps     bigint nanoseconds
//   int_value      number when Number.isSafeInteger, else bigint; JSON
//                  integers beyond 2^53 are read exactly, quoted or not
//   double_value   number, so an integral double reads like an int (3.0 -> 3)
//   bytes_value    plain Uint8Array (base64-decoded in JSON)
//   array_value    AttrValue[]; kvlist_value a plain object; empty AnyValue null
//   enums, flags, dropped counts  number; absent strings ''

export type AttrValue =
  | string
  | boolean
  | number
  | bigint
  | null
  | Uint8Array
  | AttrValue[]
  | { [key: string]: AttrValue }
export type Attributes = Record<string, AttrValue>

export const OtlpSpanKind = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const
export const OtlpStatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const

export interface ReceivedEvent {
  name: string
  timeUnixNano: bigint
  attributes: Attributes
  droppedAttributesCount: number
}

export interface ReceivedLink {
  traceId: string
  spanId: string
  traceState: string
  flags: number
  attributes: Attributes
  droppedAttributesCount: number
}

export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  traceState: string
  flags: number
  name: string
  kind: number
  startTimeUnixNano: bigint
  endTimeUnixNano: bigint
  attributes: Attributes
  droppedAttributesCount: number
  events: ReceivedEvent[]
  droppedEventsCount: number
  links: ReceivedLink[]
  droppedLinksCount: number
  status: { code: number; message: string }
  resource: Attributes
  scope: { name: string; version: string; attributes: Attributes }
}

export class OtlpDecodeError extends Error {}

const fail = (msg: string): never => {
  throw new OtlpDecodeError(msg)
}

// Nesting bound for AnyValue so a hostile payload cannot blow the stack.
const MAX_DEPTH = 64

const toAttrInt = (v: bigint): number | bigint =>
  v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v

// defineProperty, not assignment: an attribute named "__proto__" must stay data.
function setAttr(into: Attributes, key: string, value: AttrValue): void {
  Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true })
}

function newSpan(resource: Attributes, scope: ReceivedSpan['scope']): ReceivedSpan {
  return {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    traceState: '',
    flags: 0,
    name: '',
    kind: 0,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: 0, message: '' },
    resource,
    scope,
  }
}

// ---- protobuf --------------------------------------------------------------

const WIRE_VARINT = 0
const WIRE_I64 = 1
const WIRE_LEN = 2
const WIRE_I32 = 5

class PbReader {
  pos = 0
  wire = -1

  constructor(private readonly buf: Buffer) {}

  // Walks one message; the callback must consume each field with a typed
  // reader or skip(), which the check below enforces.
  static each(buf: Buffer, onField: (no: number, r: PbReader) => void): void {
    const r = new PbReader(buf)
    while (r.pos < buf.length) {
      const tag = r.length()
      const no = Math.floor(tag / 8)
      r.wire = tag % 8
      if (no === 0) fail('protobuf: field number 0')
      const before = r.pos
      onField(no, r)
      if (r.pos === before) throw new Error(`otlp-decode bug: field ${no} not consumed`)
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) fail('protobuf: truncated message')
  }

  private want(wire: number, no: string): void {
    if (this.wire !== wire) fail(`protobuf: ${no} has wire type ${this.wire}, expected ${wire}`)
  }

  /** A varint that fits a double exactly (tags, lengths): no BigInt on the hot path of counting. */
  length(): number {
    let v = 0
    for (let i = 0, scale = 1; i < 8; i++, scale *= 128) {
      this.need(1)
      const b = this.buf[this.pos++]!
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
    }
    return fail('protobuf: varint too long for a tag or a length')
  }

  rawVarint(): bigint {
    let v = 0n
    for (let i = 0, shift = 0n; i < 10; i++, shift += 7n) {
      this.need(1)
      const b = this.buf[this.pos++]!
      v |= BigInt(b & 0x7f) << shift
      if (b < 0x80) return BigInt.asUintN(64, v)
    }
    return fail('protobuf: varint longer than 10 bytes')
  }

  varint(): bigint {
    this.want(WIRE_VARINT, 'varint field')
    return this.rawVarint()
  }

  uint32 = (): number => Number(BigInt.asUintN(32, this.varint()))
  int32 = (): number => Number(BigInt.asIntN(32, this.varint()))
  int64 = (): bigint => BigInt.asIntN(64, this.varint())
  bool = (): boolean => this.varint() !== 0n

  fixed32(): number {
    this.want(WIRE_I32, 'fixed32 field')
    this.need(4)
    const v = this.buf.readUInt32LE(this.pos)
    this.pos += 4
    return v
  }

  fixed64(): bigint {
    this.want(WIRE_I64, 'fixed64 field')
    this.need(8)
    const v = this.buf.readBigUInt64LE(this.pos)
    this.pos += 8
    return v
  }

  double(): number {
    this.want(WIRE_I64, 'double field')
    this.need(8)
    const v = this.buf.readDoubleLE(this.pos)
    this.pos += 8
    return v
  }

  bytes(): Buffer {
    this.want(WIRE_LEN, 'length-delimited field')
    const len = this.length()
    this.need(len)
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  string = (): string => this.bytes().toString('utf8')
  hex = (): string => this.bytes().toString('hex')

  skip(): void {
    switch (this.wire) {
      case WIRE_VARINT:
        this.rawVarint()
        return
      case WIRE_I64:
        this.need(8)
        this.pos += 8
        return
      case WIRE_LEN: {
        const len = this.length()
        this.need(len)
        this.pos += len
        return
      }
      case WIRE_I32:
        this.need(4)
        this.pos += 4
        return
      default:
        // 3/4 are proto2 groups, which no OTLP message uses; 6/7 do not exist.
        fail(`protobuf: unsupported wire type ${this.wire}`)
    }
  }
}

function pbAnyValue(buf: Buffer, depth: number): AttrValue {
  if (depth > MAX_DEPTH) fail('protobuf: AnyValue nested too deeply')
  let v: AttrValue = null
  PbReader.each(buf, (no, r) => {
    switch (no) {
      case 1: v = r.string(); break
      case 2: v = r.bool(); break
      case 3: v = toAttrInt(r.int64()); break
      case 4: v = r.double(); break
      case 5: {
        const arr: AttrValue[] = []
        PbReader.each(r.bytes(), (n, ar) => (n === 1 ? arr.push(pbAnyValue(ar.bytes(), depth + 1)) : ar.skip()))
        v = arr
        break
      }
      case 6: {
        const kv: Attributes = {}
        PbReader.each(r.bytes(), (n, kr) => (n === 1 ? pbKeyValue(kr.bytes(), kv, depth + 1) : kr.skip()))
        v = kv
        break
      }
      case 7: v = new Uint8Array(r.bytes()); break
      default: r.skip()
    }
  })
  return v
}

function pbKeyValue(buf: Buffer, into: Attributes, depth: number): void {
  let key = ''
  let value: AttrValue = null
  PbReader.each(buf, (no, r) => {
    if (no === 1) key = r.string()
    else if (no === 2) value = pbAnyValue(r.bytes(), depth + 1)
    else r.skip()
  })
  setAttr(into, key, value)
}

const pbAttr = (r: PbReader, into: Attributes): void => pbKeyValue(r.bytes(), into, 0)

function pbEvent(buf: Buffer): ReceivedEvent {
  const e: ReceivedEvent = { name: '', timeUnixNano: 0n, attributes: {}, droppedAttributesCount: 0 }
  PbReader.each(buf, (no, r) => {
    switch (no) {
      case 1: e.timeUnixNano = r.fixed64(); break
      case 2: e.name = r.string(); break
      case 3: pbAttr(r, e.attributes); break
      case 4: e.droppedAttributesCount = r.uint32(); break
      default: r.skip()
    }
  })
  return e
}

function pbLink(buf: Buffer): ReceivedLink {
  const l: ReceivedLink = { traceId: '', spanId: '', traceState: '', flags: 0, attributes: {}, droppedAttributesCount: 0 }
  PbReader.each(buf, (no, r) => {
    switch (no) {
      case 1: l.traceId = r.hex(); break
      case 2: l.spanId = r.hex(); break
      case 3: l.traceState = r.string(); break
      case 4: pbAttr(r, l.attributes); break
      case 5: l.droppedAttributesCount = r.uint32(); break
      case 6: l.flags = r.fixed32(); break
      default: r.skip()
    }
  })
  return l
}

function pbSpan(buf: Buffer, s: ReceivedSpan): ReceivedSpan {
  PbReader.each(buf, (no, r) => {
    switch (no) {
      case 1: s.traceId = r.hex(); break
      case 2: s.spanId = r.hex(); break
      case 3: s.traceState = r.string(); break
      case 4: s.parentSpanId = r.hex(); break
      case 5: s.name = r.string(); break
      case 6: s.kind = r.int32(); break
      case 7: s.startTimeUnixNano = r.fixed64(); break
      case 8: s.endTimeUnixNano = r.fixed64(); break
      case 9: pbAttr(r, s.attributes); break
      case 10: s.droppedAttributesCount = r.uint32(); break
      case 11: s.events.push(pbEvent(r.bytes())); break
      case 12: s.droppedEventsCount = r.uint32(); break
      case 13: s.links.push(pbLink(r.bytes())); break
      case 14: s.droppedLinksCount = r.uint32(); break
      case 15: {
        const st = { code: 0, message: '' }
        PbReader.each(r.bytes(), (n, sr) => {
          if (n === 2) st.message = sr.string()
          else if (n === 3) st.code = sr.int32()
          else sr.skip()
        })
        s.status = st
        break
      }
      case 16: s.flags = r.fixed32(); break
      default: r.skip()
    }
  })
  return s
}

function pbScopeSpans(buf: Buffer, resource: Attributes, out: ReceivedSpan[]): void {
  const scope: ReceivedSpan['scope'] = { name: '', version: '', attributes: {} }
  const spans: Buffer[] = []
  PbReader.each(buf, (no, r) => {
    if (no === 1) {
      PbReader.each(r.bytes(), (n, sr) => {
        if (n === 1) scope.name = sr.string()
        else if (n === 2) scope.version = sr.string()
        else if (n === 3) pbAttr(sr, scope.attributes)
        else sr.skip()
      })
    } else if (no === 2) spans.push(r.bytes())
    else r.skip()
  })
  for (const s of spans) out.push(pbSpan(s, newSpan(resource, scope)))
}

function pbResourceSpans(buf: Buffer, out: ReceivedSpan[]): void {
  const resource: Attributes = {}
  const scopeSpans: Buffer[] = []
  // Fields may come in any order, so the resource is read before any span.
  PbReader.each(buf, (no, r) => {
    if (no === 1) PbReader.each(r.bytes(), (n, rr) => (n === 1 ? pbAttr(rr, resource) : rr.skip()))
    else if (no === 2) scopeSpans.push(r.bytes())
    else r.skip()
  })
  for (const ss of scopeSpans) pbScopeSpans(ss, resource, out)
}

/** Decodes a binary opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest. */
export function decodeProtobufRequest(body: Uint8Array): ReceivedSpan[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const out: ReceivedSpan[] = []
  PbReader.each(buf, (no, r) => (no === 1 ? pbResourceSpans(r.bytes(), out) : r.skip()))
  return out
}

/** Spans in a binary ExportTraceServiceRequest, without decoding them: ResourceSpans{2: ScopeSpans{2: Span}}. */
export function countProtobufSpans(body: Uint8Array): number {
  let n = 0
  const inScope = (no: number, r: PbReader): void => {
    if (no === 2) n++
    r.skip()
  }
  const inResource = (no: number, r: PbReader): void => (no === 2 ? PbReader.each(r.bytes(), inScope) : r.skip())
  PbReader.each(Buffer.from(body.buffer, body.byteOffset, body.byteLength), (no, r) => (no === 1 ? PbReader.each(r.bytes(), inResource) : r.skip()))
  return n
}

// ---- JSON ------------------------------------------------------------------

type JsonObject = Record<string, unknown>

const jObj = (v: unknown, what: string): JsonObject =>
  v == null ? {} : typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : fail(`json: ${what} is not an object`)
const jArr = (v: unknown, what: string): unknown[] =>
  v == null ? [] : Array.isArray(v) ? v : fail(`json: ${what} is not an array`)
const jStr = (v: unknown, what: string): string =>
  v == null ? '' : typeof v === 'string' ? v : fail(`json: ${what} is not a string`)

function jInt(v: unknown, what: string): bigint {
  if (v == null) return 0n
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v)
  return fail(`json: ${what} is not an integer: ${JSON.stringify(v)}`)
}

const jNum = (v: unknown, what: string): number => Number(jInt(v, what))

// Proto3 JSON allows enum names too, though OTLP/JSON requires the integers.
function jEnum(v: unknown, names: readonly string[], what: string): number {
  const i = typeof v === 'string' ? names.indexOf(v) : -1
  return i >= 0 ? i : jNum(v, what)
}
const KIND_NAMES = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'].map((n) => `SPAN_KIND_${n}`)
const STATUS_NAMES = ['UNSET', 'OK', 'ERROR'].map((n) => `STATUS_CODE_${n}`)

function jDouble(v: unknown, what: string): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && /^(?:NaN|-?Infinity|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)$/.test(v)) return Number(v)
  return fail(`json: ${what} is not a double: ${JSON.stringify(v)}`)
}

function jId(v: unknown, what: string): string {
  const s = jStr(v, what)
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) fail(`json: ${what} is not hex: ${JSON.stringify(s)}`)
  return s.toLowerCase()
}

function jAnyValue(v: unknown, depth: number): AttrValue {
  if (depth > MAX_DEPTH) fail('json: AnyValue nested too deeply')
  const o = jObj(v, 'AnyValue')
  if (o.stringValue !== undefined) return jStr(o.stringValue, 'stringValue')
  if (o.boolValue !== undefined) {
    return typeof o.boolValue === 'boolean' ? o.boolValue : fail('json: boolValue is not a boolean')
  }
  if (o.intValue !== undefined) return toAttrInt(jInt(o.intValue, 'intValue'))
  if (o.doubleValue !== undefined) return jDouble(o.doubleValue, 'doubleValue')
  if (o.arrayValue !== undefined) {
    return jArr(jObj(o.arrayValue, 'arrayValue').values, 'arrayValue.values').map((x) => jAnyValue(x, depth + 1))
  }
  if (o.kvlistValue !== undefined) return jAttrs(jObj(o.kvlistValue, 'kvlistValue').values, depth + 1)
  if (o.bytesValue !== undefined) return new Uint8Array(Buffer.from(jStr(o.bytesValue, 'bytesValue'), 'base64'))
  return null
}

function jAttrs(list: unknown, depth = 0): Attributes {
  const out: Attributes = {}
  for (const kv of jArr(list, 'attributes')) {
    const o = jObj(kv, 'KeyValue')
    setAttr(out, jStr(o.key, 'key'), jAnyValue(o.value, depth + 1))
  }
  return out
}

function jSpan(v: unknown, resource: Attributes, scope: ReceivedSpan['scope']): ReceivedSpan {
  const o = jObj(v, 'Span')
  const st = jObj(o.status, 'status')
  return {
    ...newSpan(resource, scope),
    traceId: jId(o.traceId, 'traceId'),
    spanId: jId(o.spanId, 'spanId'),
    parentSpanId: jId(o.parentSpanId, 'parentSpanId'),
    traceState: jStr(o.traceState, 'traceState'),
    flags: jNum(o.flags, 'flags'),
    name: jStr(o.name, 'name'),
    kind: jEnum(o.kind, KIND_NAMES, 'kind'),
    startTimeUnixNano: jInt(o.startTimeUnixNano, 'startTimeUnixNano'),
    endTimeUnixNano: jInt(o.endTimeUnixNano, 'endTimeUnixNano'),
    attributes: jAttrs(o.attributes),
    droppedAttributesCount: jNum(o.droppedAttributesCount, 'droppedAttributesCount'),
    events: jArr(o.events, 'events').map((ev) => {
      const e = jObj(ev, 'Event')
      return {
        name: jStr(e.name, 'event name'),
        timeUnixNano: jInt(e.timeUnixNano, 'timeUnixNano'),
        attributes: jAttrs(e.attributes),
        droppedAttributesCount: jNum(e.droppedAttributesCount, 'droppedAttributesCount'),
      }
    }),
    droppedEventsCount: jNum(o.droppedEventsCount, 'droppedEventsCount'),
    links: jArr(o.links, 'links').map((lv) => {
      const l = jObj(lv, 'Link')
      return {
        traceId: jId(l.traceId, 'link traceId'),
        spanId: jId(l.spanId, 'link spanId'),
        traceState: jStr(l.traceState, 'link traceState'),
        flags: jNum(l.flags, 'link flags'),
        attributes: jAttrs(l.attributes),
        droppedAttributesCount: jNum(l.droppedAttributesCount, 'droppedAttributesCount'),
      }
    }),
    droppedLinksCount: jNum(o.droppedLinksCount, 'droppedLinksCount'),
    status: { code: jEnum(st.code, STATUS_NAMES, 'status code'), message: jStr(st.message, 'status message') },
  }
}

// JSON.parse rounds integers beyond 2^53; quoting them first keeps int64
// attributes and timestamps exact whether the sender quoted them or not.
function parseJsonExact(text: string): unknown {
  let out = ''
  let last = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++
      const tok = text.slice(i, j)
      if (/^-?\d+$/.test(tok) && !Number.isSafeInteger(Number(tok))) {
        out += `${text.slice(last, i)}"${tok}"`
        last = j
      }
      i = j - 1
    }
  }
  try {
    return JSON.parse(out + text.slice(last))
  } catch (err) {
    return fail(`json: ${(err as Error).message}`)
  }
}

/** Decodes an OTLP/JSON ExportTraceServiceRequest. */
export function decodeJsonRequest(body: string | Uint8Array): ReceivedSpan[] {
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8')
  const out: ReceivedSpan[] = []
  for (const rsv of jArr(jObj(parseJsonExact(text), 'request').resourceSpans, 'resourceSpans')) {
    const rs = jObj(rsv, 'ResourceSpans')
    const resource = jAttrs(jObj(rs.resource, 'resource').attributes)
    for (const ssv of jArr(rs.scopeSpans, 'scopeSpans')) {
      const ss = jObj(ssv, 'ScopeSpans')
      const so = jObj(ss.scope, 'scope')
      const scope = { name: jStr(so.name, 'scope name'), version: jStr(so.version, 'scope version'), attributes: jAttrs(so.attributes) }
      for (const sv of jArr(ss.spans, 'spans')) out.push(jSpan(sv, resource, scope))
    }
  }
  return out
}

/** Spans in an OTLP/JSON ExportTraceServiceRequest, without normalizing them. */
export function countJsonSpans(body: string | Uint8Array): number {
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8')
  let req: unknown
  try {
    req = JSON.parse(text)
  } catch (err) {
    return fail(`json: ${(err as Error).message}`)
  }
  let n = 0
  for (const rs of jArr(jObj(req, 'request').resourceSpans, 'resourceSpans')) {
    for (const ss of jArr(jObj(rs, 'ResourceSpans').scopeSpans, 'scopeSpans')) n += jArr(jObj(ss, 'ScopeSpans').spans, 'spans').length
  }
  return n
}
