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
//   method= url= host= status= frontend= backend= server= client=   tag=<key> <value>...
//
// The tree:  SERVER "<method> <frontend>"  [start, end]
//              queue      [start, +Tw]                    when Tw > 0
//              CLIENT "<method> <backend>"  [start+Tw, end]  id = the server's parent
//                connect           [.., +Tc]              when Tc > 0
//                server response   [.., +Tr]              when Tr >= 0

import { DataType, type NamedValue } from '../spop/index.js'
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
  frontend: string
  backend: string
  server: string
  client: string
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
    frontend: '',
    backend: '',
    server: '',
    client: '',
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
  const serverAttrs: Attributes = {}
  if (uniqueId !== '') serverAttrs['haproxy.unique_id'] = uniqueId
  if (f.method) serverAttrs['http.request.method'] = f.method
  if (f.url) {
    serverAttrs['url.path'] = q < 0 ? f.url : f.url.slice(0, q)
    if (q >= 0) serverAttrs['url.query'] = f.url.slice(q + 1)
  }
  if (f.host) serverAttrs['server.address'] = f.host
  if (f.status) serverAttrs['http.response.status_code'] = f.status
  if (f.client) serverAttrs['client.address'] = f.client
  if (f.frontend) serverAttrs['haproxy.frontend'] = f.frontend
  for (const [key, values] of f.tags) {
    const v = values.length > 0 ? valuesToAttribute(values) : undefined
    if (v !== undefined && key !== '') serverAttrs[key] = v
  }
  const root = make(ids.spanId(), parent, `${method} ${f.frontend || 'haproxy'}`.trim(), 'server', f.startUs, f.endUs, serverAttrs, f.status >= 500)

  let t = f.startUs
  if (queue > 0) make(ids.spanId(), root.spanId, 'queue', 'internal', t, t + queue, {}, false)
  if (queue > 0) t += queue
  // A client span only when HAProxy tried to reach a server: its id is the parent the server saw.
  if (connect >= 0 || response >= 0) {
    const clientAttrs: Attributes = {}
    if (f.method) clientAttrs['http.request.method'] = f.method
    if (f.backend) clientAttrs['haproxy.backend'] = f.backend
    if (f.server) clientAttrs['haproxy.server'] = f.server
    if (f.status) clientAttrs['http.response.status_code'] = f.status
    const client = make(ctx.spanId, root.spanId, `${method} ${f.backend || 'backend'}`, 'client', t, f.endUs, clientAttrs, f.status >= 400)
    if (connect > 0) make(ids.spanId(), client.spanId, 'connect', 'internal', t, t + connect, {}, false)
    if (connect > 0) t += connect
    if (response >= 0) make(ids.spanId(), client.spanId, 'server response', 'internal', t, t + response, {}, false)
  }
  return spans
}
