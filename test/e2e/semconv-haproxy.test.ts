// End to end with the real HAProxy: the spans of both profiles we define
// (spoe-propagation.cfg, the compact profile) speak OpenTelemetry's stable
// HTTP semantic conventions with one vocabulary. For a 200, a 404 and a 503
// from the server: the request's attributes and status on the root SERVER
// span, the server's address and the status on the CLIENT span whose context
// the server received, span status as the conventions say (SERVER: 5xx,
// CLIENT: 4xx and 5xx, with error.type), and the server's own work nested in
// time inside that CLIENT span. Checked at the OTLP receiver.

import t, { type Test } from 'tap'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { OtlpSpanKind, OtlpStatusCode, type ReceivedSpan } from '../../harness/otlp-receiver.js'
import { startStack } from '../helpers/stack.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
const UA = 'e2e-client/1.0 (semconv; +tests)'

/** The stable HTTP names both profiles use on the SERVER span, HAProxy's own beside them. */
const SERVER_KEYS = [
  'client.address',
  'client.port',
  'haproxy.frontend',
  'haproxy.unique_id',
  'http.request.method',
  'http.response.status_code',
  'network.protocol.version',
  'server.address',
  'server.port',
  'url.path',
  'url.query',
  'url.scheme',
  'user_agent.original',
]
const CLIENT_KEYS = ['haproxy.backend', 'haproxy.server', 'http.request.method', 'http.response.status_code', 'server.address', 'server.port']

const profiles = [
  {
    name: 'propagation profile (spoe-propagation.cfg)',
    config: 'haproxy/haproxy.cfg',
    spoe: 'haproxy/spoe-propagation.cfg',
    env: {},
    complete: (spans: ReceivedSpan[]) => spans.length >= 9,
    root: (spans: ReceivedSpan[]) => spans.find((s) => s.name === 'HAProxy session')!,
    injected: (spans: ReceivedSpan[]) => spans.find((s) => s.name === 'Backend HTTP request')!,
  },
  {
    name: 'compact profile (haproxy-compact.cfg, spoe-compact.cfg)',
    config: 'haproxy/haproxy-compact.cfg',
    spoe: 'haproxy/spoe-compact.cfg',
    env: {},
    complete: (spans: ReceivedSpan[]) => spans.some((s) => s.name === 'server response'),
    root: (spans: ReceivedSpan[]) => spans.find((s) => s.kind === OtlpSpanKind.SERVER)!,
    injected: (spans: ReceivedSpan[]) => spans.find((s) => s.kind === OtlpSpanKind.CLIENT)!,
  },
]

async function check(t: Test, p: (typeof profiles)[number]) {
  const { receiver, origin, fePort } = await startStack(t, { bin: bin!, config: p.config, spoe: p.spoe, env: p.env })
  const roots: ReceivedSpan[] = []
  for (const [status, serverError, clientError] of [[200, false, false], [404, false, true], [503, true, true]] as const) {
    const path = `/items/${status}?status=${status}&q=a%20b`
    const res = await get(`http://127.0.0.1:${fePort}${path}`, { 'user-agent': UA })
    t.equal(res.status, status, `${path}: ${status} from the server`)
    const seen = origin.requests.find((r) => r.url === path)!
    const traceId = String(seen.headers.traceparent).split('-')[1]
    const trace = () => receiver.spans.filter((s) => s.traceId === traceId)
    t.ok(await eventually(() => p.complete(trace()), 10_000), `${status}: the request's spans arrived`)
    const spans = trace()
    const root = p.root(spans)
    const client = p.injected(spans)
    roots.push(root)
    const label = `${status}`

    // The CLIENT span is the one whose context the server received.
    t.equal(String(seen.headers.traceparent).split('-')[2], client.spanId, `${label}: the server's parent is the CLIENT span`)
    t.equal(root.kind, OtlpSpanKind.SERVER)
    t.equal(client.kind, OtlpSpanKind.CLIENT)

    // The request, on the root SERVER span.
    const ra = root.attributes
    const own = (attrs: object) => Object.keys(attrs).filter((k) => !k.startsWith('baggage.')).sort()
    t.same(
      own(ra),
      [...SERVER_KEYS.filter((k) => k !== 'haproxy.unique_id' || 'haproxy.unique_id' in ra), ...(serverError ? ['error.type'] : [])].sort(),
      `${label}: SERVER span attributes`,
    )
    t.same(
      [ra['http.request.method'], ra['url.path'], ra['url.query'], ra['url.scheme']],
      ['GET', `/items/${status}`, `status=${status}&q=a%20b`, 'http'],
      `${label}: method, path, query, scheme`,
    )
    t.same([ra['server.address'], ra['server.port']], ['127.0.0.1', fePort], `${label}: server.address and server.port, from the Host header`)
    t.equal(ra['client.address'], '127.0.0.1')
    t.ok(typeof ra['client.port'] === 'number' && (ra['client.port'] as number) > 0, `${label}: client.port ${String(ra['client.port'])}`)
    t.same([ra['network.protocol.version'], ra['user_agent.original']], ['1.1', UA])
    t.equal(ra['http.response.status_code'], status, `${label}: the status on the root`)
    t.equal(ra['haproxy.frontend'], 'http-in')

    // The exchange with the server, on the CLIENT span.
    const ca = client.attributes
    t.same(own(ca), [...CLIENT_KEYS, ...(clientError ? ['error.type'] : [])].sort(), `${label}: CLIENT span attributes`)
    t.same(
      [ca['http.request.method'], ca['server.address'], ca['server.port'], ca['http.response.status_code'], ca['haproxy.backend'], ca['haproxy.server']],
      ['GET', '127.0.0.1', origin.port, status, 'app', 'app1'],
      `${label}: the server's address and port, the status`,
    )

    // Status as the conventions say.
    t.same([root.status.code, ra['error.type']], serverError ? [OtlpStatusCode.ERROR, String(status)] : [OtlpStatusCode.UNSET, undefined], `${label}: SERVER status`)
    t.same([client.status.code, ca['error.type']], clientError ? [OtlpStatusCode.ERROR, String(status)] : [OtlpStatusCode.UNSET, undefined], `${label}: CLIENT status`)
    const failed = spans.filter((s) => s.status.code === OtlpStatusCode.ERROR).map((s) => s.name)
    t.same(failed.sort(), [...(serverError ? [root.name] : []), ...(clientError ? [client.name] : [])].sort(), `${label}: no other span fails`)

    // The server's work nests in time inside the span whose context it received.
    const us = (ns: bigint) => Number(ns / 1000n)
    t.ok(us(client.startTimeUnixNano) <= seen.receivedUs, `${label}: the CLIENT span starts before the server receives the request`)
    t.ok(seen.respondedUs <= us(client.endTimeUnixNano), `${label}: and ends after the server answered (${(us(client.endTimeUnixNano) - seen.respondedUs).toFixed(0)} us later)`)
    t.ok(us(root.startTimeUnixNano) <= us(client.startTimeUnixNano) && us(client.endTimeUnixNano) <= us(root.endTimeUnixNano), `${label}: inside the root`)
  }
  return roots
}

const vocab = new Map<string, string[]>()
for (const p of profiles) {
  t.test(p.name, { skip: bin === null }, async (t) => {
    const roots = await check(t, p)
    vocab.set(p.name, Object.keys(roots[0]!.attributes).filter((k) => k !== 'haproxy.unique_id' && !k.startsWith('baggage.')).sort())
  })
}

t.test('one vocabulary: the root SERVER spans of both profiles have the same attribute names', { skip: bin === null }, async (t) => {
  const [a, b] = [...vocab.values()]
  t.ok(a !== undefined && b !== undefined, 'both profiles ran')
  t.same(a, b)
})
