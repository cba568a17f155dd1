// An in-test OTLP/HTTP trace receiver: it owns decoding what a tracing backend
// really receives (OTLP/JSON and OTLP/protobuf ExportTraceServiceRequests,
// gzip or not) into one normalized span shape, and injecting faults into the
// reply. Listens on 127.0.0.1 only; every wait is bounded.
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

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'

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
      const tag = r.rawVarint()
      const no = Number(tag >> 3n)
      r.wire = Number(tag & 7n)
      if (no === 0) fail('protobuf: field number 0')
      const before = r.pos
      onField(no, r)
      if (r.pos === before) throw new Error(`otlp-receiver bug: field ${no} not consumed`)
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) fail('protobuf: truncated message')
  }

  private want(wire: number, no: string): void {
    if (this.wire !== wire) fail(`protobuf: ${no} has wire type ${this.wire}, expected ${wire}`)
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
    const len = this.rawVarint()
    if (len > BigInt(this.buf.length - this.pos)) fail('protobuf: truncated message')
    const out = this.buf.subarray(this.pos, this.pos + Number(len))
    this.pos += out.length
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
      case WIRE_LEN:
        this.bytes()
        return
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

// ---- HTTP receiver ---------------------------------------------------------

const JSON_TYPE = 'application/json'
const PROTOBUF_TYPE = 'application/x-protobuf'

export interface ResponseSpec {
  /** HTTP status; default 200. A non-2xx status rejects the request's spans. */
  status?: number
  retryAfterSeconds?: number
  delayMs?: number
  /** Replaces the default body (an empty ExportTraceServiceResponse, or a Status on errors). */
  body?: string
}

export interface ReceivedRequest {
  contentType: string
  encoding: string
  /** Body size on the wire (before gunzip). */
  bytes: number
  spanCount: number
  status: number
  /** The decompressed body, kept only with `keepBodies`. */
  body?: Buffer
}

export interface OtlpReceiverOptions {
  /** Listen on this port (a collector coming back where it was); default: a free one. */
  port?: number
  /** Cap on the body, both on the wire and after gunzip; default 32 MiB. */
  maxBodyBytes?: number
  keepBodies?: boolean
  response?: ResponseSpec
}

interface Waiter {
  done: () => boolean
  resolve: () => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

const isOk = (status: number): boolean => status >= 200 && status < 300

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  readonly requests: ReceivedRequest[] = []
  acceptedRequests = 0
  rejectedRequests = 0
  invalidRequests = 0
  url = ''
  tracesUrl = ''

  private response: ResponseSpec
  private readonly server: Server
  private readonly maxBodyBytes: number
  private readonly keepBodies: boolean
  private readonly port: number
  private readonly waiters = new Set<Waiter>()
  private readonly sleepers = new Set<() => void>()
  private closed = false

  constructor(opts: OtlpReceiverOptions = {}) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 32 * 1024 * 1024
    this.keepBodies = opts.keepBodies ?? false
    this.port = opts.port ?? 0
    this.response = { ...opts.response }
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.send(res, 500, 'text/plain', String(err))
        else res.destroy()
      })
    })
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}`
    this.tracesUrl = `${this.url}/v1/traces`
    return this
  }

  /** Replaces the reply for subsequent requests; `setResponse()` restores the default 200. */
  setResponse(spec: ResponseSpec = {}): void {
    this.response = { ...spec }
  }

  clear(): void {
    this.spans.length = 0
    this.requests.length = 0
    this.acceptedRequests = this.rejectedRequests = this.invalidRequests = 0
  }

  spanNamed(name: string): ReceivedSpan {
    const s = this.spans.find((x) => x.name === name)
    if (!s) throw new Error(`no span named ${JSON.stringify(name)}; have ${this.describeSpans()}`)
    return s
  }

  async waitForSpans(n: number, timeoutMs = 5000): Promise<ReceivedSpan[]> {
    await this.waitFor(() => this.spans.length >= n, timeoutMs, () => `waitForSpans(${n})`)
    return this.spans.slice()
  }

  /** Waits for n answered requests, accepted or not (rejections add no spans). */
  async waitForRequests(n: number, timeoutMs = 5000): Promise<ReceivedRequest[]> {
    await this.waitFor(() => this.requests.length >= n, timeoutMs, () => `waitForRequests(${n})`)
    return this.requests.slice()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const wake of this.sleepers) wake()
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(new Error(`otlp receiver closed while waiting; ${this.describe()}`))
    }
    this.waiters.clear()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve()
    if (this.closed) return Promise.reject(new Error(`${what()}: otlp receiver is closed`))
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        done,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w)
          reject(new Error(`${what()} timed out after ${timeoutMs} ms; ${this.describe()}`))
        }, timeoutMs),
      }
      this.waiters.add(w)
    })
  }

  private notify(): void {
    for (const w of this.waiters) {
      if (!w.done()) continue
      clearTimeout(w.timer)
      this.waiters.delete(w)
      w.resolve()
    }
  }

  private describeSpans(): string {
    const kinds = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer']
    return `[${this.spans.map((s) => `${JSON.stringify(s.name)} ${kinds[s.kind] ?? s.kind} ${s.spanId}`).join(', ')}]`
  }

  private describe(): string {
    const reqs = this.requests.map((r) => `${r.status} ${r.contentType || '-'}${r.encoding === 'identity' ? '' : `+${r.encoding}`} ${r.spanCount} span(s)`)
    return `received ${this.spans.length} span(s) ${this.describeSpans()} in ${this.requests.length} request(s) [${reqs.join(', ')}]`
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.sleepers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.sleepers.add(wake)
    })
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...headers })
    res.end(body)
  }

  private invalid(res: ServerResponse, rec: ReceivedRequest, status: number, msg: string, headers: Record<string, string> = {}): void {
    this.invalidRequests++
    this.requests.push({ ...rec, status })
    this.send(res, status, 'text/plain', `${msg}\n`, headers)
    this.notify()
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const spec = this.response
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    const rec: ReceivedRequest = { contentType, encoding, bytes: 0, spanCount: 0, status: 0 }

    if ((req.url ?? '').split('?')[0] !== '/v1/traces') return this.invalid(res, rec, 404, `no such endpoint: ${req.url}`)
    if (req.method !== 'POST') return this.invalid(res, rec, 405, `${req.method} not allowed`, { allow: 'POST' })
    if (contentType !== JSON_TYPE && contentType !== PROTOBUF_TYPE) {
      return this.invalid(res, rec, 415, `unsupported content-type ${JSON.stringify(contentType)}`)
    }
    if (encoding !== 'identity' && encoding !== 'gzip') {
      return this.invalid(res, rec, 415, `unsupported content-encoding ${JSON.stringify(encoding)}`)
    }

    const tooLarge = (): void =>
      this.invalid(res, rec, 413, `body exceeds ${this.maxBodyBytes} bytes`, { connection: 'close' })
    const wire = await readBody(req, this.maxBodyBytes)
    if (wire === null) return tooLarge()
    rec.bytes = wire.length

    let body = wire
    if (encoding === 'gzip') {
      try {
        body = await promisify(gunzip)(wire, { maxOutputLength: this.maxBodyBytes })
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return tooLarge()
        return this.invalid(res, rec, 400, `bad gzip body: ${(err as Error).message}`)
      }
    }
    if (this.keepBodies) rec.body = body

    let spans: ReceivedSpan[]
    try {
      spans = contentType === JSON_TYPE ? decodeJsonRequest(body) : decodeProtobufRequest(body)
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err
      return this.invalid(res, rec, 400, err.message)
    }
    rec.spanCount = spans.length

    if (spec.delayMs) await this.sleep(spec.delayMs)
    if (this.closed) return

    const status = spec.status ?? 200
    rec.status = status
    if (isOk(status)) {
      this.acceptedRequests++
      this.spans.push(...spans)
    } else {
      this.rejectedRequests++
    }
    this.requests.push(rec)

    const headers: Record<string, string> = {}
    if (spec.retryAfterSeconds !== undefined) headers['retry-after'] = String(spec.retryAfterSeconds)
    this.send(res, status, contentType, spec.body ?? defaultBody(contentType, status), headers)
    this.notify()
  }
}

// Success: an empty ExportTraceServiceResponse. Failure: a google.rpc.Status
// carrying only its message (field 2), as the OTLP/HTTP spec asks.
function defaultBody(contentType: string, status: number): string | Buffer {
  const message = `injected HTTP ${status}`
  if (contentType === JSON_TYPE) return isOk(status) ? '{}' : JSON.stringify({ message })
  if (isOk(status)) return Buffer.alloc(0)
  const msg = Buffer.from(message)
  return Buffer.concat([Buffer.from([0x12, msg.length]), msg])
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.resolve(null)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > max) {
        over = true
        chunks.length = 0
        resolve(null)
      } else chunks.push(chunk)
    })
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks, size)))
    req.on('error', reject)
    req.on('close', () => reject(new Error('client went away before the body ended')))
  })
}

export async function startOtlpReceiver(opts: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  return new OtlpReceiver(opts).listen()
}
