// End to end with the real HAProxy: the compact profile (haproxy-compact.cfg,
// spoe-compact.cfg). HAProxy makes or continues the trace context itself and
// sends one message per traced request; the agent keeps no state. The
// exported spans and the headers the backend received agree on trace id and
// parent id: with an incoming traceparent, without, malformed, sampled=0;
// untraced paths; a 0% sampling rate; HAProxy's own timers; B3 contexts
// (SPOA_COMPACT_B3=1), multi-header and single, continued in the form they came.
// The attributes, status and timing: semconv-haproxy.test.ts.

import t, { type Test } from 'tap'
import { checkUnsampledContext, requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { OtlpSpanKind } from '../../harness/otlp-receiver.js'
import { exportIdle, spansBeforeMarker, startStack } from '../helpers/stack.js'

const bin = requireHaproxy(t)
const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const P = '00f067aa0ba902b7'

async function stack(t: Test, samplePercent = 100, env: Record<string, string> = {}) {
  const { receiver, daemon, origin, fePort } = await startStack(t, {
    bin: bin!,
    config: 'haproxy/haproxy-compact.cfg',
    spoe: 'haproxy/spoe-compact.cfg',
    env: { SPOA_SAMPLE_PERCENT: String(samplePercent), ...env },
  })
  /** One request; its spans (none expected: those that arrived before a later traced request's), the headers the backend received. */
  const request = async (path: string, headers: Record<string, string> = {}, expectSpans = true) => {
    receiver.clear()
    const res = await get(`http://127.0.0.1:${fePort}${path}`, headers)
    t.equal(res.status, 200, `${path}: 200`)
    const seen = origin.requests.find((r) => r.url === path)!
    if (expectSpans) await receiver.waitForSpans(1, 10_000)
    const all = expectSpans ? (await exportIdle(daemon), receiver.spans.slice()) : await spansBeforeMarker(receiver, daemon, fePort)
    const byKind = (k: number) => all.find((s) => s.kind === k)
    return { all, server: byKind(OtlpSpanKind.SERVER), client: byKind(OtlpSpanKind.CLIENT), backend: seen.headers }
  }
  return { request, daemon }
}

const parentOf = (tp: unknown) => String(tp).split('-')

t.test('compact profile at 100%: context made or continued by HAProxy, spans from one message', { skip: bin === null }, async (t) => {
  const { request, daemon } = await stack(t)

  const joined = await request('/joined?x=1', { traceparent: `00-${T}-${P}-01`, tracestate: 'rojo=1' })
  const names = new Set(joined.all.map((s) => s.name))
  for (const n of ['GET http-in', 'GET app', 'server response']) t.ok(names.has(n), `span ${n}`)
  // queue and connect appear only when HAProxy's Tw / Tc were at least 1 ms.
  t.same([...names].filter((n) => !['GET http-in', 'GET app', 'server response', 'queue', 'connect'].includes(n)), [], 'no other span')
  t.same(new Set(joined.all.map((s) => s.traceId)), new Set([T]))
  t.same([joined.server!.parentSpanId, (joined.server!.flags & 0x300) === 0x300], [P, true], 'the server span continues the incoming one')
  const [, tid, pid, flags] = parentOf(joined.backend.traceparent)
  t.same([tid, pid, flags], [T, joined.client!.spanId, '01'], "the backend's parent is the exported client span")
  t.equal(joined.client!.parentSpanId, joined.server!.spanId)
  t.has(joined.server!.attributes, {
    'http.request.method': 'GET',
    'url.path': '/joined',
    'url.query': 'x=1',
    'url.scheme': 'http',
    'http.response.status_code': 200,
    'client.address': '127.0.0.1',
    'haproxy.frontend': 'http-in',
  })
  t.equal(joined.client!.attributes['haproxy.server'], 'app1')
  t.equal(joined.server!.traceState, 'rojo=1')

  const fresh = await request('/fresh')
  const [, tid2, pid2] = parentOf(fresh.backend.traceparent)
  t.same([tid2, pid2], [fresh.server!.traceId, fresh.client!.spanId], 'a new trace, HAProxy-made')
  t.equal(fresh.server!.parentSpanId, '')

  const bad = await request('/malformed', { traceparent: '00-xyz-01' })
  t.match(bad.backend.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'a malformed header is replaced')
  t.equal(parentOf(bad.backend.traceparent)[1], bad.server!.traceId)

  const unsampled = await request('/unsampled', { traceparent: `00-${T}-${P}-00` }, false)
  t.equal(unsampled.all.length, 0, 'sampled=0: no message, no span')
  t.equal(unsampled.backend.traceparent, `00-${T}-${P}-00`, 'an unsampled context passes untouched')

  const health = await request('/healthz', { traceparent: `00-${T}-${P}-01` }, false)
  t.equal(health.all.length, 0, 'health checks are not traced')
  t.equal(health.backend.traceparent, `00-${T}-${P}-01`, 'and pass untouched')

  const slow = await request('/slow?delay=150')
  const wait = slow.all.find((s) => s.name === 'server response')!
  const ms = Number(wait.endTimeUnixNano - wait.startTimeUnixNano) / 1e6
  // Tr is whole milliseconds and the span ends no later than the response
  // date HAProxy took itself (another clock reading): up to 1 ms may be cut.
  // No fixed upper bound (a loaded machine delays HAProxy's own reading, 192
  // ms seen under the whole suite): the wait lies within the request's span.
  const whole = slow.all.find((s) => s.kind === 2)!
  t.ok(ms > 149, `HAProxy's own Tr for a 150 ms backend: ${ms} ms`)
  t.ok(
    wait.startTimeUnixNano >= whole.startTimeUnixNano && wait.endTimeUnixNano <= whole.endTimeUnixNano,
    'within the SERVER span of the request',
  )
  t.equal(daemon.trees.size, 0, 'the agent kept no state')
})

t.test('compact profile at 0%: only requests with a sampled parent are traced', { skip: bin === null }, async (t) => {
  const { request } = await stack(t, 0)
  const none = await request('/new', {}, false)
  t.equal(none.all.length, 0)
  checkUnsampledContext(t, none.backend.traceparent, 'context still propagated, not sampled')
  const bad = await request('/bad', { traceparent: `00-${T}-${'0'.repeat(16)}-01` }, false)
  checkUnsampledContext(t, bad.backend.traceparent, 'an invalid context is replaced by one not sampled, not added to')
  const parent = await request('/parent', { traceparent: `00-${T}-${P}-01` })
  t.equal(parent.server!.traceId, T, 'a sampled parent is honoured')
})

t.test('compact profile, SPOA_PROPAGATE_UNSAMPLED=0: requests not traced pass untouched', { skip: bin === null }, async (t) => {
  const { request } = await stack(t, 0, { SPOA_PROPAGATE_UNSAMPLED: '0' })
  const none = await request('/new', {}, false)
  t.equal(none.all.length, 0)
  t.equal(none.backend.traceparent, undefined, 'no traceparent added')
  const parent = await request('/parent', { traceparent: `00-${T}-${P}-01` })
  t.equal(parent.server!.traceId, T, 'a sampled parent is still honoured')
  t.same(parentOf(parent.backend.traceparent).slice(0, 2), ['00', T])
})

t.test('compact profile with SPOA_COMPACT_B3=1: B3 contexts are continued, in the form they came', { skip: bin === null }, async (t) => {
  const { request, daemon } = await stack(t, 100, { SPOA_COMPACT_B3: '1' })
  const T64 = 'a3ce929d0e0e4736'

  const multi = await request('/b3-multi', { 'x-b3-traceid': T, 'x-b3-spanid': P, 'x-b3-sampled': '1', 'x-b3-parentspanid': '1111111111111111' })
  t.same(new Set(multi.all.map((s) => s.traceId)), new Set([T]), 'multi: the B3 trace')
  t.equal(multi.server!.parentSpanId, P, 'multi: the server span continues the incoming span')
  t.same(
    [multi.backend['x-b3-traceid'], multi.backend['x-b3-spanid'], multi.backend['x-b3-sampled'], multi.backend['x-b3-parentspanid']],
    [T, multi.client!.spanId, '1', undefined],
    "multi: the backend's B3 parent is the exported client span",
  )
  t.same(parentOf(multi.backend.traceparent), ['00', T, multi.client!.spanId, '01'], 'and so is its traceparent')

  const short = await request('/b3-64bit', { 'x-b3-traceid': T64, 'x-b3-spanid': P })
  t.equal(short.server!.traceId, `${'0'.repeat(16)}${T64}`, 'a 64-bit trace id, left-padded; no flag: decided by HAProxy (100%)')
  t.equal(short.backend['x-b3-traceid'], T64, 'the B3 header keeps the id as it came')
  t.equal(parentOf(short.backend.traceparent)[1], `${'0'.repeat(16)}${T64}`)

  const single = await request('/b3-single', { b3: `${T}-${P}-1-1111111111111111` })
  t.equal(single.server!.traceId, T, 'single: the B3 trace')
  t.equal(single.server!.parentSpanId, P)
  t.equal(single.backend.b3, `${T}-${single.client!.spanId}-1`, "single: the backend's b3 names the exported client span")

  const debug = await request('/b3-debug', { b3: `${T}-${P}-d` })
  t.equal(debug.server!.traceId, T, 'single, debug flag: sampled')

  const no = await request('/b3-unsampled', { b3: `${T}-${P}-0` }, false)
  t.equal(no.all.length, 0, 'single, sampled 0: no message, no span')
  t.same([no.backend.b3, no.backend.traceparent], [`${T}-${P}-0`, undefined], 'the B3 context passes untouched, no traceparent added')

  const deny = await request('/b3-deny', { b3: '0' }, false)
  t.equal(deny.all.length, 0, 'b3: 0, "do not sample": no span')
  checkUnsampledContext(t, deny.backend.traceparent, 'told downstream as a W3C context not sampled')

  const both = await request('/both', { traceparent: `00-${T}-${P}-01`, b3: `${T64}${T64}-1111111111111111-1` })
  t.equal(both.server!.traceId, T, 'a valid traceparent wins over B3')
  t.equal(both.backend.b3, `${T64}${T64}-1111111111111111-1`, 'and B3 then passes untouched')

  const zero = await request('/b3-zero', { 'x-b3-traceid': '0'.repeat(32), 'x-b3-spanid': P, 'x-b3-sampled': '1' })
  t.not(zero.server!.traceId, '0'.repeat(32), 'an all-zero B3 trace id is no context: a new trace')
  t.equal(zero.server!.parentSpanId, '', 'with no remote parent')
  t.equal(daemon.trees.size, 0, 'the agent kept no state')
})

t.test('compact profile without SPOA_COMPACT_B3: B3 headers are not read', { skip: bin === null }, async (t) => {
  const { request } = await stack(t)
  const r = await request('/b3-ignored', { b3: `${T}-${P}-1` })
  t.not(r.server!.traceId, T, 'a new trace')
  t.equal(r.backend.b3, `${T}-${P}-1`, 'B3 passes untouched')
})
