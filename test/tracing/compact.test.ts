// The compact profile: a whole span tree from one message, no state.

import t from 'tap'
import { type Message, type NamedValue, type TypedValue, tv } from '../../src/spop/index.js'
import { GrammarInterpreter } from '../../src/tracing/grammar.js'
import { TraceStore } from '../../src/tracing/trace-store.js'
import { MemorySink } from '../helpers/memory-sink.js'

const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const C = 'aaaaaaaaaaaaaaaa'
const P = '00f067aa0ba902b7'
const start = 1_700_000_000_000_000

const a = (name: string, v: TypedValue | string): NamedValue => ({ name, ...(typeof v === 'string' ? tv.string(v) : v) })
function compact(over: Record<string, TypedValue | string> = {}, extra: NamedValue[] = []): Message {
  const fields: Record<string, TypedValue | string> = {
    compact: `00-${T}-${C}-01`,
    parent: P,
    tracestate: 'rojo=1',
    start: tv.int64(start),
    end: tv.int64(start + 60_000),
    timers: '0 2 3 50',
    method: 'GET',
    url: '/api/items?page=2',
    host: 'shop.example',
    status: tv.int64(200),
    version: '1.1',
    ua: 'curl/8.0 (x86_64, linux)',
    frontend: 'http-in',
    backend: 'app',
    server: 'app1',
    client: tv.ipv4('10.1.2.3'),
    client_port: tv.int64(51234),
    server_addr: tv.ipv4('10.0.0.7'),
    server_port: tv.int64(8000),
    ...over,
  }
  return { name: 'spoa-tracer:compact', args: [a('id', 'uid-1'), ...Object.entries(fields).map(([k, v]) => a(k, v)), ...extra] }
}

function run(...messages: Message[]) {
  const sink = new MemorySink()
  const store = new TraceStore({ sink })
  const interp = new GrammarInterpreter(store)
  for (const m of messages) interp.apply('e1', m, start + 100_000)
  return { sink, store }
}

t.test('a full request: server span, queue, client span with connect and server response', async (t) => {
  const { sink, store } = run(compact({}, [a('tag', 'tenant'), a('', 'acme')]))
  t.equal(sink.trees.length, 1)
  const byName = new Map(sink.spans.map((s) => [s.name, s]))
  t.same([...byName.keys()], ['GET http-in', 'queue', 'GET app', 'connect', 'server response'])
  const server = byName.get('GET http-in')!
  const client = byName.get('GET app')!
  t.same([server.kind, server.parentSpanId, server.parentIsRemote, server.traceId, server.traceState], ['server', P, true, T, 'rojo=1'])
  t.same([server.startUs, server.endUs], [start, start + 60_000])
  t.same(server.attributes, {
    'haproxy.unique_id': 'uid-1',
    'http.request.method': 'GET',
    'url.path': '/api/items',
    'url.query': 'page=2',
    'url.scheme': 'http',
    'server.address': 'shop.example',
    'server.port': 80,
    'client.address': '10.1.2.3',
    'client.port': 51234,
    'network.protocol.version': '1.1',
    'user_agent.original': 'curl/8.0 (x86_64, linux)',
    'http.response.status_code': 200,
    'haproxy.frontend': 'http-in',
    tenant: 'acme',
  })
  t.same(client.attributes, {
    'http.request.method': 'GET',
    'server.address': '10.0.0.7',
    'server.port': 8000,
    'haproxy.backend': 'app',
    'haproxy.server': 'app1',
    'http.response.status_code': 200,
  })
  t.same([server.status.code, client.status.code], [0, 0], '2xx: status unset')
  t.same([client.spanId, client.parentSpanId, client.kind, client.parentIsRemote], [C, server.spanId, 'client', false], "the client span carries the id the server saw as its parent")
  t.same([client.startUs, client.endUs], [start + 2000, start + 60_000], 'after the queue')
  const q = byName.get('queue')!
  const c = byName.get('connect')!
  const r = byName.get('server response')!
  t.same([q.parentSpanId, q.startUs, q.endUs], [server.spanId, start, start + 2000])
  t.same([c.parentSpanId, c.startUs, c.endUs], [C, start + 2000, start + 5000])
  t.same([r.parentSpanId, r.startUs, r.endUs], [C, start + 5000, start + 55_000])
  t.equal(store.size, 0, 'no state kept')
})

t.test('no server reached (Tc and Tr -1): no client span; 5xx is an error', async (t) => {
  const { sink } = run(compact({ timers: '0 -1 -1 -1', status: tv.int64(503), parent: '' }))
  t.same(sink.spans.map((s) => s.name), ['GET http-in'])
  t.same([sink.spans[0]!.status.code, sink.spans[0]!.parentSpanId, sink.spans[0]!.parentIsRemote], [2, '', false])
  t.equal(sink.spans[0]!.attributes['error.type'], '503', 'error.type: the status code, as a string')
})

t.test('status as the conventions say: SERVER an error for 5xx only, CLIENT for 4xx and 5xx', async (t) => {
  const cases: Array<[number, number, number]> = [
    [200, 0, 0],
    [302, 0, 0],
    [404, 0, 2],
    [429, 0, 2],
    [500, 2, 2],
    [503, 2, 2],
  ]
  for (const [status, serverCode, clientCode] of cases) {
    const { sink } = run(compact({ status: tv.int64(status), timers: '0 0 0 4' }))
    const server = sink.spans.find((s) => s.kind === 'server')!
    const client = sink.spans.find((s) => s.kind === 'client')!
    t.same([server.status.code, client.status.code], [serverCode, clientCode], `${status}`)
    t.equal(server.attributes['error.type'], serverCode === 2 ? String(status) : undefined, `${status}: server error.type`)
    t.equal(client.attributes['error.type'], clientCode === 2 ? String(status) : undefined, `${status}: client error.type`)
    t.same(sink.spans.filter((s) => s.kind === 'internal').map((s) => s.status.code), [0], 'internal spans: unset')
  }
})

t.test('host, scheme and protocol version as the conventions write them', async (t) => {
  const server = (over: Record<string, TypedValue | string>) => run(compact(over)).sink.spans.find((s) => s.kind === 'server')!.attributes
  const at = (over: Record<string, TypedValue | string>) => {
    const x = server(over)
    return [x['server.address'], x['server.port'], x['url.scheme']]
  }
  t.same(at({ host: 'shop.example:8443' }), ['shop.example', 8443, 'http'])
  t.same(at({ host: 'shop.example', tls: tv.bool(true) }), ['shop.example', 443, 'https'], 'no port: the scheme default')
  t.same(at({ host: '[2001:db8::1]:8080' }), ['2001:db8::1', 8080, 'http'], 'IPv6 literal')
  t.same(at({ host: '[2001:db8::1]' }), ['2001:db8::1', 80, 'http'])
  t.same(at({ host: '10.0.0.1:81' }), ['10.0.0.1', 81, 'http'])
  t.same(at({ host: tv.null() }), [undefined, undefined, 'http'], 'no Host: no server.address')
  t.equal(server({ version: '2.0' })['network.protocol.version'], '2')
  t.equal(server({ version: '1.0' })['network.protocol.version'], '1.0')
  t.equal(server({ url: '/p' })['url.query'], undefined, 'no query: no url.query')
  t.equal(server({ url: '/p?' })['url.query'], '', 'an empty query is a query')
})

t.test('unusable messages create nothing and are counted', async (t) => {
  const { sink, store } = run(
    compact({ compact: `00-${T}-${C}-00` }),
    compact({ compact: 'garbage' }),
    compact({ start: 'x' }),
    compact({ end: tv.int64(start - 1) }),
  )
  t.equal(sink.spans.length, 0)
  t.equal(store.stats.treesSampledOut, 1)
  t.same(Object.fromEntries(store.stats.messagesRejected), { compact_bad_context: 1, compact_bad_time: 2 })
})

t.test('no unique id (HAProxy without unique-id-format): the tree is built, unlabelled', async (t) => {
  const msg = compact()
  const { sink, store } = run({ ...msg, args: [{ name: 'id', ...tv.null() }, ...msg.args.slice(1)] })
  t.equal(sink.spans.length, 5, 'server, queue, client, connect, server response')
  t.notOk(sink.spans.some((s) => 'haproxy.unique_id' in s.attributes), 'no haproxy.unique_id attribute')
  t.same(Object.fromEntries(store.stats.messagesRejected), {})
})
