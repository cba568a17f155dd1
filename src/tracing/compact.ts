// The compact profile: one record per traced request, carrying everything
// needed to build the request's span tree at once. Two intakes bring it, one
// format (COMPACT_FIELDS, docs/COMPACT-RECORD.md): a SPOE message sent by
// HAProxy from its http-response rules (send-spoe-group), or a log record
// (src/intake/log/); both end in applyCompactRecord(). HAProxy generated (or continued) the
// trace context itself at request time and already gave it to the server,
// so no agent round trip delays the request and the agent keeps no state:
// any number of agents behind one SPOE backend can share the load.
//
//   id=unique-id  compact=<traceparent HAProxy sent to the server>
//   parent=<incoming span id>  tracestate=<...>
//   start=<epoch us at http-request>  end=<epoch us at http-response>
//   timers="<TR> <Tw> <Tc> <Tr>"   (ms, -1 when the step did not happen)
//   method= url=<path and query> host=<Host header> status= version= ua= tls=
//   frontend= backend= server= client= client_port= server_addr= server_port=
//   tag=<key> <value>...
//
// The tree:  SERVER "<method> <frontend>"  [start, end]
//              queue      [start, +Tw]                    when Tw > 0
//              CLIENT "<method> <backend>"  [start+Tw, end]  id = the server's parent
//                connect           [.., +Tc]              when Tc > 0
//                server response   [.., +Tr]              when Tr >= 0
//
// Attributes follow OpenTelemetry's stable HTTP conventions, the same names
// as haproxy/spoe-propagation.cfg: the SERVER span has the request
// (http.request.method, url.path, url.query, url.scheme, server.address and
// server.port from the Host header, client.address, client.port,
// network.protocol.version, user_agent.original) and the response status;
// the CLIENT span the method, the server's address and port, the status.
// Status and error.type: http-status.ts.

import { DataType, type NamedValue } from '../spop/index.js'
import { bump } from '../util/counters.js'
import { httpErrorType } from './http-status.js'
import type { IdGenerator } from './ids.js'
import { parseTraceparent } from './propagation.js'
import type { TraceStore } from './trace-store.js'
import { type Attributes, type AttrValue, type FinishedSpan, type SpanKindName, StatusCode } from './types.js'
import { valueToAttribute, valueToString } from './values.js'

export interface CompactFields {
  traceparent: string
  parent: string
  tracestate: string
  startUs: number
  endUs: number
  timers: string
  method: string
  url: string
  host: string
  status: number
  version: string
  userAgent: string
  /** The client's connection was TLS (ssl_fc); null when HAProxy could not tell. */
  tls: boolean | null
  frontend: string
  backend: string
  server: string
  client: string
  clientPort: number
  serverAddr: string
  serverPort: number
  /** Attributes added by the configuration (tag=<key> <value>...; tag.<key>="..." in a log record). */
  tags: Array<[string, Array<AttrValue | null>]>
}

/** A field's value as either intake hands it over: a typed SPOE sample, or the text of a log record. */
export type FieldValue = string | number | boolean | null

function int(v: FieldValue): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v.trim())
  return Number.NaN
}

function str(v: FieldValue): string {
  if (v === null) return ''
  if (typeof v === 'boolean') return v ? '1' : '0'
  return typeof v === 'string' ? v : String(v)
}

/** ssl_fc: a boolean sample (SPOE) or its log form ("1"/"0"); null when HAProxy could not tell. */
function bool(v: FieldValue): boolean | null {
  if (typeof v === 'boolean') return v
  if (v === '1' || v === 'true') return true
  if (v === '0' || v === 'false') return false
  return null
}

/**
 * The compact record, version 1 (docs/COMPACT-RECORD.md): one name per
 * field, the same in the SPOE message (`<name>=<sample>`) and in the log
 * record (`<name>="<value>"` in its RFC 5424 structured data). Unknown names
 * are ignored, so that a newer HAProxy configuration can add fields.
 */
// No prototype: a hostile name (`__proto__`, `constructor`) finds nothing.
export const COMPACT_FIELDS: Readonly<Record<string, ((f: CompactFields, v: FieldValue) => void) | undefined>> = Object.assign(Object.create(null), {
  compact: (f, v) => (f.traceparent = str(v)),
  parent: (f, v) => (f.parent = str(v).toLowerCase()),
  tracestate: (f, v) => (f.tracestate = str(v)),
  start: (f, v) => (f.startUs = int(v)),
  end: (f, v) => (f.endUs = int(v)),
  timers: (f, v) => (f.timers = str(v)),
  method: (f, v) => (f.method = str(v)),
  url: (f, v) => (f.url = str(v)),
  host: (f, v) => (f.host = str(v)),
  status: (f, v) => (f.status = int(v) || 0),
  version: (f, v) => (f.version = str(v)),
  ua: (f, v) => (f.userAgent = str(v)),
  tls: (f, v) => (f.tls = bool(v)),
  frontend: (f, v) => (f.frontend = str(v)),
  backend: (f, v) => (f.backend = str(v)),
  server: (f, v) => (f.server = str(v)),
  client: (f, v) => (f.client = str(v)),
  client_port: (f, v) => (f.clientPort = int(v) || 0),
  server_addr: (f, v) => (f.serverAddr = str(v)),
  server_port: (f, v) => (f.serverPort = int(v) || 0),
} satisfies Record<string, (f: CompactFields, v: FieldValue) => void>)

export function emptyCompact(): CompactFields {
  return {
    traceparent: '',
    parent: '',
    tracestate: '',
    startUs: Number.NaN,
    endUs: Number.NaN,
    timers: '',
    method: '',
    url: '',
    host: '',
    status: 0,
    version: '',
    userAgent: '',
    tls: null,
    frontend: '',
    backend: '',
    server: '',
    client: '',
    clientPort: 0,
    serverAddr: '',
    serverPort: 0,
    tags: [],
  }
}

/** A SPOE sample as a field value: strings only where a string is kept (start and end are 16-digit integers). */
function spoeValue(v: NamedValue): FieldValue {
  switch (v.type) {
    case DataType.NULL:
      return null
    case DataType.BOOL:
      return v.value
    case DataType.INT32:
    case DataType.INT64:
    case DataType.UINT32:
    case DataType.UINT64:
      return typeof v.value === 'number' ? v.value : v.value.toString()
    default:
      return valueToString(v)
  }
}

/** Reads the arguments of a compact message (after id=). Unknown names are ignored. */
export function readCompact(args: readonly NamedValue[]): CompactFields {
  const f = emptyCompact()
  let tag: [string, Array<AttrValue | null>] | null = null
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!
    if (a.name === '') {
      if (tag !== null) tag[1].push(valueToAttribute(a) ?? null)
      continue
    }
    tag = null
    if (a.name === 'tag') {
      tag = [a.type === DataType.NULL ? '' : valueToString(a), []]
      f.tags.push(tag)
      continue
    }
    COMPACT_FIELDS[a.name]?.(f, spoeValue(a))
  }
  return f
}

/** What became of one compact record: its tree went to export, or the reason it did not. */
export type CompactOutcome = 'traced' | 'bad_context' | 'bad_time' | 'sampled_out'

/**
 * The one code path of the compact record, whichever intake brought it
 * (SPOE message or log record): the tree is built, string values longer than
 * the span limit are cut (counted, as for any span), and the tree goes to
 * export whole; otherwise the reason is counted.
 */
export function applyCompactRecord(store: TraceStore, f: CompactFields, engineId: string | null, uniqueId: string): CompactOutcome {
  const spans = buildCompact(f, engineId, uniqueId, store.ids)
  if (typeof spans === 'string') {
    if (spans === 'sampled_out') store.stats.treesSampledOut++
    else bump(store.stats.messagesRejected, `compact_${spans}`)
    return spans
  }
  const max = store.spanLimits.maxAttributeLength
  if (max > 0) {
    for (const span of spans) {
      const attrs = span.attributes
      for (const k in attrs) {
        const v = attrs[k]
        if (typeof v === 'string' && v.length > max) {
          attrs[k] = v.slice(0, max)
          store.stats.limits.valuesTruncated++
        }
      }
    }
  }
  store.pushComplete(spans)
  return 'traced'
}

/**
 * The spans of one compact message, or the reason there are none: a bad
 * context, missing times, or a request HAProxy sampled out.
 */
export function buildCompact(
  f: CompactFields,
  engineId: string | null,
  uniqueId: string,
  ids: IdGenerator,
): FinishedSpan[] | 'bad_context' | 'bad_time' | 'sampled_out' {
  const ctx = parseTraceparent(f.traceparent)
  if (typeof ctx === 'string') return 'bad_context'
  if (!ctx.sampled) return 'sampled_out'
  if (!Number.isFinite(f.startUs) || !Number.isFinite(f.endUs) || f.endUs < f.startUs) return 'bad_time'
  const [tr, tw, tc, tResp] = (f.timers.trim() === '' ? [] : f.timers.trim().split(/\s+/)).map(Number) as number[]
  const ms = (v: number | undefined): number => (v !== undefined && Number.isFinite(v) && v >= 0 ? v * 1000 : -1)
  // TR (the time to receive the request) is over before `start`, taken in http-request rules.
  void tr
  const queue = ms(tw)
  const connect = ms(tc)
  const response = ms(tResp)
  const parent = /^[0-9a-f]{16}$/.test(f.parent) && f.parent !== '0000000000000000' ? f.parent : ''
  const traceState = f.tracestate.trim()
  const spans: FinishedSpan[] = []
  const make = (
    spanId: string,
    parentSpanId: string,
    name: string,
    kind: SpanKindName,
    startUs: number,
    endUs: number,
    attributes: Attributes,
    error: boolean,
  ): FinishedSpan => {
    const s: FinishedSpan = {
      traceId: ctx.traceId,
      spanId,
      parentSpanId,
      // Only the root's parent lives in another process.
      parentIsRemote: spans.length === 0 && parentSpanId !== '',
      traceFlags: 1,
      traceState,
      name,
      kind,
      startUs,
      endUs: Math.max(startUs, Math.min(endUs, f.endUs)),
      attributes,
      events: [],
      links: [],
      status: { code: error ? StatusCode.ERROR : StatusCode.UNSET, message: '' },
      engineId,
      droppedAttributes: 0,
      droppedEvents: 0,
      droppedLinks: 0,
    }
    spans.push(s)
    return s
  }

  const method = f.method || 'HTTP'
  const q = f.url.indexOf('?')
  const scheme = f.tls === true ? 'https' : 'http'
  const serverAttrs: Attributes = {}
  if (uniqueId !== '') serverAttrs['haproxy.unique_id'] = uniqueId
  if (f.method) serverAttrs['http.request.method'] = f.method
  if (f.url) {
    serverAttrs['url.path'] = q < 0 ? f.url : f.url.slice(0, q)
    if (q >= 0) serverAttrs['url.query'] = f.url.slice(q + 1)
  }
  serverAttrs['url.scheme'] = scheme
  const host = parseHost(f.host)
  if (host !== null) {
    serverAttrs['server.address'] = host.address
    serverAttrs['server.port'] = host.port ?? (scheme === 'https' ? 443 : 80)
  }
  if (f.client) serverAttrs['client.address'] = f.client
  if (f.clientPort) serverAttrs['client.port'] = f.clientPort
  if (f.version) serverAttrs['network.protocol.version'] = protocolVersion(f.version)
  if (f.userAgent) serverAttrs['user_agent.original'] = f.userAgent
  if (f.status) serverAttrs['http.response.status_code'] = f.status
  if (f.frontend) serverAttrs['haproxy.frontend'] = f.frontend
  for (const [key, values] of f.tags) {
    const v = tagValue(values)
    if (v !== undefined && key !== '') serverAttrs[key] = v
  }
  const serverError = httpErrorType('server', f.status)
  if (serverError !== null) serverAttrs['error.type'] ??= serverError
  const root = make(ids.spanId(), parent, `${method} ${f.frontend || 'haproxy'}`.trim(), 'server', f.startUs, f.endUs, serverAttrs, serverError !== null)

  let t = f.startUs
  if (queue > 0) make(ids.spanId(), root.spanId, 'queue', 'internal', t, t + queue, {}, false)
  if (queue > 0) t += queue
  // A client span only when HAProxy tried to reach a server: its id is the parent the server saw.
  if (connect >= 0 || response >= 0) {
    const clientAttrs: Attributes = {}
    if (f.method) clientAttrs['http.request.method'] = f.method
    if (f.serverAddr) clientAttrs['server.address'] = f.serverAddr
    if (f.serverPort) clientAttrs['server.port'] = f.serverPort
    if (f.backend) clientAttrs['haproxy.backend'] = f.backend
    if (f.server) clientAttrs['haproxy.server'] = f.server
    if (f.status) clientAttrs['http.response.status_code'] = f.status
    const clientError = httpErrorType('client', f.status)
    if (clientError !== null) clientAttrs['error.type'] = clientError
    const client = make(ctx.spanId, root.spanId, `${method} ${f.backend || 'backend'}`, 'client', t, f.endUs, clientAttrs, clientError !== null)
    if (connect > 0) make(ids.spanId(), client.spanId, 'connect', 'internal', t, t + connect, {}, false)
    if (connect > 0) t += connect
    if (response >= 0) make(ids.spanId(), client.spanId, 'server response', 'internal', t, t + response, {}, false)
  }
  return spans
}

/** One value keeps its type; several join as text, as the 9-span grammar joins them (values.ts). */
function tagValue(values: ReadonlyArray<AttrValue | null>): AttrValue | undefined {
  if (values.length === 1) return values[0] ?? undefined
  if (values.length === 0) return undefined
  let s = ''
  for (const v of values) s += v === null ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v)
  return s
}

/**
 * server.address and server.port from a Host header (or :authority):
 * "name", "name:port", "[v6]" or "[v6]:port". Null when there is none.
 */
export function parseHost(host: string): { address: string; port: number | null } | null {
  const h = host.trim()
  if (h === '') return null
  const m = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(h) ?? /^([^:]*)(?::(\d{1,5}))?$/.exec(h)
  if (m === null) return { address: h, port: null }
  return { address: m[1]!, port: m[2] === undefined ? null : Number(m[2]) }
}

/** HAProxy's req.ver ("1.1", "2.0") as the conventions write it ("1.1", "2"). */
export function protocolVersion(v: string): string {
  return v === '2.0' ? '2' : v === '3.0' ? '3' : v
}
