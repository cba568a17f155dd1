// The spoa-opentracing 9-span HTTP flow (its test/spoe.cfg), as the NOTIFY
// frames HAProxy sends for one request: one list of messages per SPOE event.
// Shared by the tracing tests (which check the spans it must produce) and by
// the load generator (which replays it), so the benchmark measures exactly
// what the tests verify. haproxy/spoe.cfg is the same flow for a real HAProxy.

import { type Message, type NamedValue, tv } from '../../src/spop/index.js'

export interface FlowRequest {
  uniqueId: string
  method?: string
  url?: string
  /** req.ver, e.g. "1.1" (the flow prefixes "HTTP/"). */
  version?: string
  status?: number
}

const s = (name: string, value: string): NamedValue => ({ name, ...tv.string(value) })
const cont = (value: string): NamedValue => ({ name: '', ...tv.string(value) })
const msg = (name: string, ...args: NamedValue[]): Message => ({ name, args })

/** The NOTIFY payloads of one request, in event order (8 frames, 9 spans). */
export function nineSpanFlow(r: FlowRequest): Message[][] {
  const id = s('id', r.uniqueId)
  const status = r.status ?? 200
  const http = [
    msg(
      'opentracing:http_response',
      id,
      s('span', 'HTTP response'),
      s('follows-from', 'TCP response'),
      s('tag', 'http.status_code'),
      { name: '', ...tv.int64(status) },
      s('finish', 'TCP response'),
    ),
  ]
  if (status < 100 || status > 399) {
    http.push(
      msg('opentracing:http_response-error', id, s('span', 'HTTP response'), s('tag', 'error'), { name: '', ...tv.bool(true) }),
    )
  }
  return [
    [
      msg(
        'opentracing:client_session_start',
        id,
        s('span', 'HAProxy session'),
        s('baggage', 'haproxy_id'),
        cont(r.uniqueId),
        s('span', 'Client session'),
        s('child-of', 'HAProxy session'),
      ),
    ],
    [msg('opentracing:frontend_tcp_request', id, s('span', 'Frontend TCP request'), s('child-of', 'Client session'))],
    [
      msg(
        'opentracing:frontend_http_request',
        id,
        s('span', 'Frontend HTTP request'),
        s('follows-from', 'Frontend TCP request'),
        s('tag', 'http.method'),
        cont(r.method ?? 'GET'),
        s('tag', 'http.url'),
        cont(r.url ?? '/index.html'),
        s('tag', 'http.version'),
        cont('HTTP/'),
        cont(r.version ?? '1.1'),
        s('finish', 'Frontend TCP request'),
      ),
    ],
    [
      msg(
        'opentracing:backend_tcp_request',
        id,
        s('span', 'Backend TCP request'),
        s('follows-from', 'Frontend HTTP request'),
        s('finish', 'Frontend HTTP request'),
      ),
    ],
    [
      msg(
        'opentracing:backend_http_request',
        id,
        s('span', 'Backend HTTP request'),
        s('follows-from', 'Backend TCP request'),
        s('finish', 'Backend TCP request'),
      ),
    ],
    [
      msg(
        'opentracing:server_session_start',
        id,
        s('span', 'Server session'),
        s('child-of', 'HAProxy session'),
        s('finish', 'Backend HTTP request'),
      ),
    ],
    [msg('opentracing:tcp_response', id, s('span', 'TCP response'), s('child-of', 'Server session'))],
    [
      ...http,
      msg('opentracing:server_session_end', id, s('finish', 'HTTP response'), s('finish', 'Server session')),
      msg('opentracing:client_session_end', id, s('finish', '*')),
    ],
  ]
}

/** Span name -> parent span name (null for the root), and how it is linked. */
export const NINE_SPAN_TREE: Record<string, { parent: string | null; followsFrom: boolean; kind: string }> = {
  'HAProxy session': { parent: null, followsFrom: false, kind: 'server' },
  'Client session': { parent: 'HAProxy session', followsFrom: false, kind: 'server' },
  'Frontend TCP request': { parent: 'Client session', followsFrom: false, kind: 'internal' },
  'Frontend HTTP request': { parent: 'Frontend TCP request', followsFrom: true, kind: 'internal' },
  'Backend TCP request': { parent: 'Frontend HTTP request', followsFrom: true, kind: 'client' },
  'Backend HTTP request': { parent: 'Backend TCP request', followsFrom: true, kind: 'client' },
  'Server session': { parent: 'HAProxy session', followsFrom: false, kind: 'client' },
  'TCP response': { parent: 'Server session', followsFrom: false, kind: 'internal' },
  'HTTP response': { parent: 'TCP response', followsFrom: true, kind: 'internal' },
}
