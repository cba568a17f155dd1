// End to end with the real HAProxy and haproxy/spoe-propagation.cfg: the
// request's trace context goes in, HAProxy's spans join that trace, and the
// backend receives a context whose parent is a span the agent exported.
// With a valid incoming traceparent, without one, with a malformed one, with
// sampled=0; B3 and Jaeger when configured; and span times against a backend
// that takes a known time. The attributes, status and timing: semconv-haproxy.test.ts.

import t, { type Test } from 'tap'
import type { CpuSched } from '../../src/daemon/cpu-sched.js'
import type { Propagator } from '../../src/tracing/propagation.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import type { ReceivedSpan } from '../../harness/otlp-receiver.js'
import { spansBeforeMarker, startStack } from '../helpers/stack.js'

const bin = requireHaproxy(t)
const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const P = '00f067aa0ba902b7'

async function stack(t: Test, propagators: Propagator[], cpuSched: CpuSched = 'normal') {
  const { receiver, daemon, origin, fePort } = await startStack(t, {
    bin: bin!,
    config: 'haproxy/haproxy.cfg',
    spoe: 'haproxy/spoe-propagation.cfg',
    daemon: (c) => ({ ...c, cpuSched, tracing: { ...c.tracing, propagators } }),
    // The tracing thread gets idle CPU only, and the test runs beside others: wait for it up to
    // just below HAProxy's timeout processing (500 ms here) rather than the default 100 ms.
    daemonOpts: { tracingThread: { injectWaitMs: 450 } },
  })
  /** One request; its exported spans (by name) and the headers the backend received. */
  const request = async (path: string, headers: Record<string, string> = {}, spans = 9) => {
    receiver.clear()
    const res = await get(`http://127.0.0.1:${fePort}${path}`, headers)
    t.equal(res.status, 200, `${path}: 200`)
    const seen = origin.requests.find((r) => r.url === path)!
    const got = spans > 0 ? await receiver.waitForSpans(spans, 10_000) : await spansBeforeMarker(receiver, daemon, fePort)
    return { spans: new Map(got.map((s) => [s.name, s] as [string, ReceivedSpan])), all: got, backend: seen.headers }
  }
  return { request, daemon }
}

t.test('W3C trace context and baggage', { skip: bin === null }, async (t) => {
  const { request, daemon } = await stack(t, ['tracecontext', 'baggage'])

  const joined = await request('/joined', { traceparent: `00-${T}-${P}-01`, tracestate: 'rojo=00f067aa0ba902b7', baggage: 'tenant=acme' })
  const be = joined.spans.get('Backend HTTP request')!
  const root = joined.spans.get('HAProxy session')!
  t.same(new Set(joined.all.map((s) => s.traceId)), new Set([T]), 'every span joins the incoming trace')
  t.same([root.parentSpanId, (root.flags & 0x300) === 0x300], [P, true], 'the root is the child of the remote span')
  t.equal(joined.backend.traceparent, `00-${T}-${be.spanId}-01`, "the backend's parent is the exported Backend HTTP request span")
  t.equal(joined.backend.tracestate, 'rojo=00f067aa0ba902b7', 'tracestate passed on')
  t.match(joined.backend.baggage, /tenant=acme/, 'incoming baggage passed on')
  t.match(joined.backend.baggage, /haproxy_id=/, 'and the flow\'s own baggage item')
  t.equal(root.attributes['baggage.tenant'], 'acme')

  const fresh = await request('/fresh')
  const be2 = fresh.spans.get('Backend HTTP request')!
  t.equal(fresh.all.length, 9)
  t.equal(fresh.backend.traceparent, `00-${be2.traceId}-${be2.spanId}-01`, 'no incoming context: a new trace, continued into the backend')
  t.equal(fresh.spans.get('HAProxy session')!.parentSpanId, '')

  const bad = await request('/malformed', { traceparent: '00-nonsense-01' })
  const be3 = bad.spans.get('Backend HTTP request')!
  t.not(be3.traceId, 'nonsense')
  t.equal(bad.backend.traceparent, `00-${be3.traceId}-${be3.spanId}-01`, 'a malformed header is replaced by a valid context')
  t.ok((daemon.trees.stats.contextsInvalid.get('tracecontext:malformed') ?? 0) >= 1, 'and counted')

  const unsampled = await request('/unsampled', { traceparent: `00-${T}-${P}-00` }, 0)
  t.equal(unsampled.all.length, 0, 'sampled=0: no span exported')
  t.match(unsampled.backend.traceparent, new RegExp(`^00-${T}-[0-9a-f]{16}-00$`), 'the backend is told the same')
})

t.test('B3 and Jaeger when configured', { skip: bin === null }, async (t) => {
  const { request, daemon } = await stack(t, ['b3', 'jaeger', 'b3multi'])
  const b3 = await request('/b3', { b3: `${T}-${P}-1` })
  const be = b3.spans.get('Backend HTTP request')!
  t.equal(be.traceId, T)
  t.equal(b3.backend.b3, `${T}-${be.spanId}-1`)
  t.equal(b3.backend['uber-trace-id'], `${T}:${be.spanId}:0:1`)
  t.same([b3.backend['x-b3-traceid'], b3.backend['x-b3-spanid'], b3.backend['x-b3-sampled']], [T, be.spanId, '1'])
  t.equal(b3.backend.traceparent, undefined, 'tracecontext not configured: not injected')
  // Sampling decisions without ids: honoured, never counted as malformed.
  const deny = await request('/b3-deny', { b3: '0' }, 0)
  t.equal(deny.all.length, 0, 'b3: 0: not sampled, nothing exported')
  t.match(deny.backend.b3, /^[0-9a-f]{32}-[0-9a-f]{16}-0$/, 'and the server is told not to sample')
  const debug = await request('/b3-debug', { b3: 'd' })
  t.equal(debug.all.length, 9, 'b3: d: sampled')
  t.equal(debug.spans.get('HAProxy session')!.parentSpanId, '', 'a new trace: no ids came')
  t.equal(daemon.trees.stats.contextsInvalid.size, 0, 'nothing counted as invalid')
  const jaeger = await request('/jaeger', { 'uber-trace-id': `${T.slice(16)}:${P}:0:1` })
  t.equal(jaeger.spans.get('HAProxy session')!.traceId, `${'0'.repeat(16)}${T.slice(16)}`, '64-bit Jaeger id, padded')
  t.equal(jaeger.spans.get('HAProxy session')!.parentSpanId, P)
})

t.test("span times are HAProxy's: a backend taking 150 ms", { skip: bin === null }, async (t) => {
  const { request } = await stack(t, ['tracecontext'])
  const r = await request('/slow?delay=150')
  const ms = (s: ReceivedSpan) => Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6
  // HAProxy evaluates on-tcp-response as soon as the request is on its way;
  // on-http-response fires when the response headers are in.
  const httpResponseStart = r.spans.get('HTTP response')!.startTimeUnixNano
  const backendHttpStart = r.spans.get('Backend HTTP request')!.startTimeUnixNano
  const serverWait = Number(httpResponseStart - backendHttpStart) / 1e6
  t.ok(serverWait >= 150 && serverWait < 175, `from the request sent to the response headers: ${serverWait.toFixed(1)} ms`)
  // on-tcp-response fires once the request is on its way: with HAProxy 2.6 at
  // once, with 3.x a fraction of a millisecond later (149.8 ms seen on 3.2).
  t.ok(ms(r.spans.get('TCP response')!) >= 148, `TCP response ${ms(r.spans.get('TCP response')!).toFixed(1)} ms`)
  t.ok(ms(r.spans.get('Server session')!) >= 150, `Server session ${ms(r.spans.get('Server session')!).toFixed(1)} ms`)
  t.ok(ms(r.spans.get('HAProxy session')!) < 200, 'the whole request, bounded')
})

t.test('--cpu-sched tracing-idle: the context the backend gets comes from the tracing thread, and is the exported span', { skip: bin === null || process.platform !== 'linux' }, async (t) => {
  const { request, daemon } = await stack(t, ['tracecontext', 'baggage'], 'tracing-idle')
  t.equal(daemon.store, null, 'the trees live in the tracing thread')
  const joined = await request('/joined-idle', { traceparent: `00-${T}-${P}-01` })
  const be = joined.spans.get('Backend HTTP request')!
  t.same(new Set(joined.all.map((s) => s.traceId)), new Set([T]), 'every span joins the incoming trace')
  t.equal(joined.backend.traceparent, `00-${T}-${be.spanId}-01`, "the backend's parent is the exported Backend HTTP request span")
  const fresh = await request('/fresh-idle')
  const fbe = fresh.spans.get('Backend HTTP request')!
  t.equal(fresh.backend.traceparent, `00-${fbe.traceId}-${fbe.spanId}-01`, 'a new trace, continued by the backend')
  t.equal(daemon.trees.stats.argumentErrors.get('inject_late') ?? 0, 0, 'every inject= answered in time')
})
