// The compact profile: one message per request, sent by HAProxy from its
// http-response rules (send-spoe-group), carrying everything needed to build
// the request's span tree at once. HAProxy generated (or continued) the
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
import { httpErrorType } from './http-status.js'
import type { IdGenerator } from './ids.js'
import { parseTraceparent } from './propagation.js'
import { type Attributes, type FinishedSpan, type SpanKindName, StatusCode } from './types.js'
import { valuesToAttribute, valueToString } from './values.js'

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
  tags: Array<[string, NamedValue[]]>
}

function num(v: NamedValue): number {
  if (typeof v.value === 'number') return v.value
  if (typeof v.value === 'string' && /^-?\d+$/.test(v.value.trim())) return Number(v.value.trim())
  return Number.NaN
}

const text = (v: NamedValue): string => (v.type === DataType.NULL ? '' : valueToString(v))

/** Reads the arguments of a compact message (after id=). Unknown names are ignored. */
export function readCompact(args: readonly NamedValue[]): CompactFields {
  const f: CompactFields = {
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
  let tag: [string, NamedValue[]] | null = null
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!
    if (a.name === '') {
      if (tag !== null) tag[1].push(a)
      continue
    }
    tag = null
    // Strings only where a string is kept: start and end are 16-digit integers.
    switch (a.name) {
      case 'compact':
        f.traceparent = text(a)
        break
      case 'parent':
        f.parent = text(a).toLowerCase()
        break
      case 'tracestate':
        f.tracestate = text(a)
        break
      case 'start':
        f.startUs = num(a)
        break
      case 'end':
        f.endUs = num(a)
        break
      case 'timers':
        f.timers = text(a)
        break
      case 'method':
        f.method = text(a)
        break
      case 'url':
        f.url = text(a)
        break
      case 'host':
        f.host = text(a)
        break
      case 'status':
        f.status = num(a) || 0
        break
      case 'version':
        f.version = text(a)
        break
      case 'ua':
        f.userAgent = text(a)
        break
      case 'tls':
        f.tls = a.type === DataType.BOOL ? a.value === true : null
        break
      case 'client_port':
        f.clientPort = num(a) || 0
        break
      case 'server_addr':
        f.serverAddr = text(a)
        break
      case 'server_port':
        f.serverPort = num(a) || 0
        break
      case 'frontend':
        f.frontend = text(a)
        break
      case 'backend':
        f.backend = text(a)
        break
      case 'server':
        f.server = text(a)
        break
      case 'client':
        f.client = text(a)
        break
      case 'tag':
        tag = [text(a), []]
        f.tags.push(tag)
        break
    }
  }
  return f
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
    const v = values.length > 0 ? valuesToAttribute(values) : undefined
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
