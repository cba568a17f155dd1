// The spoa-opentracing grammar against the trace store, with no socket.

import t from 'tap'
import { type Message, type NamedValue, type TypedValue, tv } from '../../src/spop/index.js'
import { ManualClock } from '../../src/tracing/clock.js'
import { GrammarInterpreter } from '../../src/tracing/grammar.js'
import { TraceStore, type TreeLimits } from '../../src/tracing/trace-store.js'
import { createTracingHandler } from '../../src/tracing/tracing-handler.js'
import { NINE_SPAN_TREE, nineSpanFlow } from '../../harness/flows/nine-span.js'
import { MemorySink } from '../helpers/memory-sink.js'

const ENGINE = 'engine-1'

function setup(limits: Partial<TreeLimits> = {}) {
  const sink = new MemorySink()
  const clock = new ManualClock()
  const store = new TraceStore({ sink, limits })
  const interp = new GrammarInterpreter(store)
  const apply = (...messages: Message[]) => {
    for (const m of messages) interp.apply(ENGINE, m, clock.nowUs())
  }
  return { sink, clock, store, apply }
}

const a = (name: string, v: TypedValue | string): NamedValue => ({ name, ...(typeof v === 'string' ? tv.string(v) : v) })
const m = (...args: NamedValue[]): Message => ({ name: 'trace', args })
const id = (v = 'req-1') => a('id', v)

t.test('the 9-span flow of spoa-opentracing: one trace, the right tree', async (t) => {
  const { sink, clock, store, apply } = setup()
  const flow = nineSpanFlow({ uniqueId: 'uid-42', method: 'GET', url: '/index.html', version: '1.1', status: 200 })
  t.equal(flow.length, 8, '8 NOTIFY frames')
  for (const frame of flow) {
    apply(...frame)
    clock.advance(1)
  }
  t.equal(sink.trees.length, 1, 'one completed tree')
  const spans = sink.spans
  t.equal(spans.length, 9, 'exactly 9 spans')
  t.same(new Set(spans.map((s) => s.name)), new Set(Object.keys(NINE_SPAN_TREE)), 'each span once')
  t.equal(new Set(spans.map((s) => s.traceId)).size, 1, 'one trace id')
  t.equal(new Set(spans.map((s) => s.spanId)).size, 9, 'distinct span ids')
  const byName = new Map(spans.map((s) => [s.name, s]))
  for (const [name, exp] of Object.entries(NINE_SPAN_TREE)) {
    const s = byName.get(name)!
    const parent = exp.parent === null ? '' : byName.get(exp.parent)!.spanId
    t.equal(s.parentSpanId, parent, `${name}: parent ${exp.parent}`)
    t.equal(s.kind, exp.kind, `${name}: kind ${exp.kind}`)
    t.same(
      s.links,
      exp.followsFrom
        ? [{ traceId: s.traceId, spanId: parent, attributes: { 'opentracing.ref_type': 'follows_from' } }]
        : [],
      `${name}: follows-from link`,
    )
    t.equal(s.attributes['baggage.haproxy_id'], 'uid-42', `${name}: baggage inherited`)
    t.ok(s.endUs >= s.startUs, `${name}: ends after it starts`)
    t.equal(s.engineId, ENGINE)
  }
  const root = byName.get('HAProxy session')!
  t.equal(root.attributes['haproxy.unique_id'], 'uid-42')
  t.same(
    Object.fromEntries(Object.entries(byName.get('Frontend HTTP request')!.attributes).filter(([k]) => k.startsWith('http.'))),
    { 'http.method': 'GET', 'http.url': '/index.html', 'http.version': 'HTTP/1.1' },
    'tags; two samples joined',
  )
  t.equal(byName.get('HTTP response')!.attributes['http.status_code'], 200, 'an int sample stays a number')
  t.equal(byName.get('HTTP response')!.status.code, 0, 'status unset on success')
  // Timing: the frontend TCP span lasts from event 2 to event 3.
  const tcp = byName.get('Frontend TCP request')!
  t.equal(tcp.endUs - tcp.startUs, 1000, 'ends at the receive time of the finishing event')
  t.equal(root.endUs - root.startUs, 7000, 'the root lasts the whole request')
  t.equal(store.size, 0, 'nothing left open')
  t.equal(store.stats.openSpans, 0)
  t.equal(store.stats.argumentErrors.size, 0, 'no argument error')
})

t.test('error response: the http_response-error message sets status ERROR on HTTP response', async (t) => {
  const { sink, apply } = setup()
  for (const frame of nineSpanFlow({ uniqueId: 'u', status: 503 })) apply(...frame)
  t.equal(sink.spans.length, 9)
  t.equal(sink.byName('HTTP response').status.code, 2)
  t.notOk('error' in sink.byName('HTTP response').attributes, 'the error tag becomes the status, not an attribute')
})

t.test('missing, empty or NULL id: nothing created, counted', async (t) => {
  const { sink, store, apply } = setup()
  apply(m(a('span', 'x')))
  apply(m())
  apply(m(a('id', ''), a('span', 'x')))
  apply(m(a('id', tv.null()), a('span', 'x')))
  t.equal(store.size, 0)
  t.equal(sink.spans.length, 0)
  t.equal(store.stats.messagesRejected.get('missing_id'), 2)
  t.equal(store.stats.messagesRejected.get('null_id'), 2)
})

t.test('tag values keep their type; several join; NULL sets nothing', async (t) => {
  const { sink, apply } = setup()
  apply(
    m(
      id(),
      a('span', 'root'),
      a('tag', 'bool'), a('', tv.bool(true)),
      a('tag', 'int'), a('', tv.int64(-42)),
      a('tag', 'u32'), a('', tv.uint32(7)),
      a('tag', 'big'), a('', tv.uint64(2n ** 64n - 1n)),
      a('tag', 'bigneg'), a('', tv.int64(-(2n ** 60n))),
      a('tag', 'v4'), a('', tv.ipv4('10.1.2.3')),
      a('tag', 'v6'), a('', tv.ipv6('2001:db8::1')),
      a('tag', 'bin'), a('', tv.binary(Buffer.from([0, 1, 255]))),
      a('tag', 'absent'), a('', tv.null()),
      a('tag', 'joined'), a('', tv.string('a')), a('', tv.int64(1)), a('', tv.bool(false)), a('', tv.null()), a('', tv.ipv4('1.2.3.4')),
      a('finish', '*'),
    ),
  )
  t.same(sink.byName('root').attributes, {
    'haproxy.unique_id': 'req-1',
    bool: true,
    int: -42,
    u32: 7,
    big: '18446744073709551615',
    bigneg: '-1152921504606846976',
    v4: '10.1.2.3',
    v6: '2001:db8::1',
    bin: 'AAH/',
    joined: 'a101.2.3.4',
  })
})

t.test('baggage: on the span and on spans created after it, below it', async (t) => {
  const { sink, apply } = setup()
  apply(m(id(), a('span', 'root'), a('span', 'early'), a('child-of', 'root')))
  apply(m(id(), a('span', 'root'), a('baggage', 'tenant'), a('', 'acme'), a('', tv.int64(7))))
  apply(m(id(), a('span', 'late'), a('child-of', 'early')), m(id(), a('span', 'later'), a('child-of', 'root')))
  apply(m(id(), a('finish', '*')))
  t.equal(sink.byName('root').attributes['baggage.tenant'], 'acme7')
  t.notOk('baggage.tenant' in sink.byName('early').attributes, 'not on a span created before it')
  t.notOk('baggage.tenant' in sink.byName('late').attributes, 'not below a span created before it')
  t.equal(sink.byName('later').attributes['baggage.tenant'], 'acme7', 'inherited by a later child')
})

t.test('log: a span event named after the key, message attribute, receive time', async (t) => {
  const { sink, clock, apply } = setup()
  apply(m(id(), a('span', 'root')))
  clock.advance(5)
  const at = clock.nowUs()
  apply(m(id(), a('span', 'root'), a('log', 'retry'), a('', 'attempt '), a('', tv.int64(2)), a('finish', 'root')))
  t.same(sink.byName('root').events, [{ name: 'retry', timeUs: at, attributes: { message: 'attempt 2' } }])
})

t.test('finish: a name, the root (completes the tree), *, and unknown names', async (t) => {
  const { sink, clock, store, apply } = setup()
  apply(m(id(), a('span', 'root'), a('span', 'a'), a('child-of', 'root'), a('span', 'b'), a('child-of', 'a')))
  clock.advance(1)
  apply(m(id(), a('finish', 'b'), a('finish', 'nope')))
  t.equal(store.stats.argumentErrors.get('finish_not_found'), 1)
  t.equal(sink.trees.length, 0, 'tree still open')
  clock.advance(1)
  apply(m(id(), a('finish', 'root')))
  t.equal(sink.trees.length, 1, 'finishing the root completes the tree')
  t.equal(sink.byName('a').endUs, sink.byName('root').endUs, 'open spans end with the root')
  t.equal(sink.byName('b').endUs + 1000, sink.byName('root').endUs)
  apply(m(id('req-2'), a('span', 'r'), a('finish', '*')))
  t.equal(sink.trees.length, 2)
  apply(m(id('req-3'), a('finish', 'x')))
  t.equal(store.stats.argumentErrors.get('finish_not_found'), 2, 'finish on a request with no tree')
  apply(m(id('req-4'), a('span', 'r'), a('span', 's'), a('child-of', 'r'), a('finish', ''), a('finish', 'x'), a('', 'y')))
  t.equal(store.stats.argumentErrors.get('finish_not_found'), 4, 'finish= continuations name more spans')
  t.equal(sink.trees.length, 2, 'empty finish name ends the current span only')
})

t.test('a reference to a span that is not open creates no span; its tags are dropped', async (t) => {
  const { sink, store, apply } = setup()
  apply(m(id(), a('span', 'root')))
  apply(m(id(), a('span', 'orphan'), a('child-of', 'missing'), a('tag', 'k'), a('', 'v'), a('span', 'ok'), a('child-of', 'root'), a('tag', 'k'), a('', 'v')))
  apply(m(id(), a('finish', '*')))
  t.same(sink.spans.map((s) => s.name).sort(), ['ok', 'root'])
  t.equal(sink.byName('ok').attributes.k, 'v')
  t.equal(store.stats.argumentErrors.get('reference_not_found'), 1)
  t.notOk(store.stats.argumentErrors.has('no_current_span'), 'the dropped tags are not counted twice')
  // A first span with a reference on a request with no tree creates no tree either.
  apply(m(id('other'), a('span', 'x'), a('follows-from', 'y')))
  t.equal(store.size, 0)
})

t.test('span= selects an open span again; a second span without reference joins under the root', async (t) => {
  const { sink, apply } = setup()
  apply(m(id(), a('span', 'root'), a('tag', 'first'), a('', tv.int64(1))))
  apply(m(id(), a('span', 'root'), a('tag', 'second'), a('', tv.int64(2))))
  apply(m(id(), a('span', 'stray'), a('tag', 'k'), a('', 'v')))
  apply(m(id(), a('finish', '*')))
  t.equal(sink.trees.length, 1)
  t.same(sink.byName('root').attributes, { 'haproxy.unique_id': 'req-1', first: 1, second: 2 })
  t.equal(sink.byName('stray').parentSpanId, sink.byName('root').spanId)
})

t.test('mistakes cost the argument, not the message', async (t) => {
  const { sink, store, apply } = setup()
  apply(
    m(
      id(),
      a('tag', 'before-span'), a('', 'x'),
      a('span', 'root'),
      a('', 'continuation of span'),
      a('bogus', 'x'), a('', 'its continuation'),
      a('child-of', 'x'),
      a('id', 'again'),
      a('tag', 'no-value'),
      a('tag', 'ok'), a('', 'yes'),
      a('span', ''),
      a('finish', '*'),
    ),
  )
  t.same(sink.byName('root').attributes, { 'haproxy.unique_id': 'req-1', ok: 'yes' })
  t.same(Object.fromEntries(store.stats.argumentErrors), {
    no_current_span: 1,
    unexpected_value: 1,
    unknown_argument: 1,
    reference_without_span: 1,
    repeated_id: 1,
    missing_value: 1,
    empty_span_name: 1,
  })
})

t.test('span.kind tag overrides the kind; error=true sets ERROR', async (t) => {
  const { sink, apply } = setup()
  apply(
    m(
      id(),
      a('span', 'root'),
      a('tag', 'span.kind'), a('', 'consumer'),
      a('span', 'Server call'), a('child-of', 'root'), a('tag', 'error'), a('', 'true'),
      a('span', 'Other'), a('child-of', 'root'), a('tag', 'error'), a('', tv.bool(false)),
      a('finish', '*'),
    ),
  )
  t.equal(sink.byName('root').kind, 'consumer')
  t.equal(sink.byName('Server call').kind, 'client', 'name heuristic: towards the server')
  t.equal(sink.byName('Server call').status.code, 2)
  t.equal(sink.byName('Other').status.code, 0)
  t.equal(sink.byName('Other').kind, 'internal')
})

t.test('trees are keyed by engine-id and unique-id; the connection does not matter', async (t) => {
  const sink = new MemorySink()
  const clock = new ManualClock()
  const store = new TraceStore({ sink })
  const handler = createTracingHandler(store, clock).handle
  const call = (engineId: string, streamId: number, ...messages: Message[]) =>
    handler(messages, { engineId, streamId, frameId: 1, size: 0, frame: Buffer.alloc(0), messagesAt: 0 })
  t.same(call('e1', 1, m(id('same'), a('span', 'root'))), [], 'no actions')
  call('e2', 1, m(id('same'), a('span', 'root')))
  t.equal(store.size, 2, 'same unique-id, two engines: two trees')
  call('e1', 99, m(id('same'), a('span', 'child'), a('child-of', 'root')), m(id('same'), a('finish', '*')))
  t.equal(sink.trees.length, 1, 'events of one request may arrive on any connection')
  t.same(sink.spans.map((s) => s.name).sort(), ['child', 'root'])
})

t.test('reaper: idle trees end at their last activity with status ERROR', async (t) => {
  const { sink, clock, store, apply } = setup({ idleTtlMs: 30_000, timeoutMessage: 'connection timeout' })
  apply(m(id('stuck'), a('span', 'root'), a('span', 'child'), a('child-of', 'root'), a('span', 'done'), a('child-of', 'root')))
  const created = clock.nowUs()
  clock.advance(10)
  apply(m(id('stuck'), a('span', 'child'), a('log', 'l'), a('', 'x'), a('finish', 'done')))
  const childActivity = clock.nowUs()
  clock.advance(10_000)
  apply(m(id('busy'), a('span', 'root')))
  t.equal(store.reap(clock.nowUs()), 0, 'nothing is idle for 30 s yet')
  clock.advance(25_000)
  t.equal(store.reap(clock.nowUs()), 1, 'the stuck tree is reaped, the busy one is not')
  t.equal(store.size, 1)
  const root = sink.byName('root')
  t.equal(root.endUs, created, 'root ends at its last activity')
  t.equal(sink.byName('child').endUs, childActivity, 'child ends at its own last activity')
  for (const name of ['root', 'child']) {
    const s = sink.byName(name)
    t.same(s.status, { code: 2, message: 'connection timeout' }, `${name}: ERROR with the timeout message`)
    t.equal(s.attributes['spoa_tracer.incomplete'], 'reaped')
  }
  t.equal(sink.byName('done').status.code, 0, 'a span that finished normally keeps its status')
  t.notOk('spoa_tracer.incomplete' in sink.byName('done').attributes)
  t.equal(store.stats.treesReaped, 1)
})

t.test('caps: open trees and spans per tree', async (t) => {
  const { sink, store, apply } = setup({ maxTrees: 2, maxSpansPerTree: 3 })
  apply(m(id('a'), a('span', 'r')), m(id('b'), a('span', 'r')), m(id('c'), a('span', 'r')))
  t.equal(store.size, 2)
  t.equal(store.stats.messagesRejected.get('tree_cap'), 1)
  apply(m(id('a'), a('span', 's1'), a('child-of', 'r'), a('span', 's2'), a('child-of', 'r'), a('span', 's3'), a('child-of', 'r'), a('tag', 'k'), a('', 'v')))
  t.equal(store.stats.spansDropped.get('span_cap'), 1)
  apply(m(id('a'), a('finish', '*')))
  t.same(sink.spans.map((s) => s.name), ['r', 's1', 's2'])
})

t.test('shutdown: open trees end now, marked incomplete', async (t) => {
  const { sink, clock, store, apply } = setup()
  apply(m(id('x'), a('span', 'root'), a('span', 'c'), a('child-of', 'root')))
  clock.advance(3)
  t.equal(store.endAll(clock.nowUs()), 1)
  t.equal(store.size, 0)
  const got = sink.spans.map((s) => [s.name, s.attributes['spoa_tracer.incomplete'], s.status.code, s.endUs])
  t.same(got.sort(), [
    ['c', 'shutdown', 2, clock.nowUs()],
    ['root', 'shutdown', 2, clock.nowUs()],
  ])
})

t.test('span attribute limits', async (t) => {
  const sink = new MemorySink()
  const store = new TraceStore({ sink, spanLimits: { maxAttributes: 3, maxEvents: 1, maxAttributeLength: 4 } })
  const interp = new GrammarInterpreter(store)
  interp.apply(null, m(id(), a('span', 'r'), a('tag', 'a'), a('', 'long value'), a('tag', 'b'), a('', '1'), a('tag', 'c'), a('', '2'), a('tag', 'a'), a('', 'x'), a('log', 'e1'), a('', 'm'), a('log', 'e2'), a('', 'm'), a('finish', '*')), 1)
  const r = sink.byName('r')
  t.same(r.attributes, { 'haproxy.unique_id': 'req-', a: 'x', b: '1' })
  t.equal(r.droppedAttributes, 1)
  t.equal(r.events.length, 1)
  t.equal(r.droppedEvents, 1)
})

t.test('span limit hits are counted for metrics and logged at most once per interval', async (t) => {
  const sink = new MemorySink()
  const { captureLogger } = await import('../helpers/logger.js')
  const cap = captureLogger('warn')
  const store = new TraceStore({ sink, logger: cap.logger, spanLimits: { maxAttributes: 2, maxAttributeLength: 3, maxEvents: 0, maxLinks: 0 } })
  const interp = new GrammarInterpreter(store)
  for (let i = 0; i < 3; i++) {
    interp.apply(null, m(id(`r${i}`), a('span', 'r'), a('span', 'c'), a('follows-from', 'r'), a('tag', 'x'), a('', 'long'), a('tag', 'y'), a('', 'v'), a('tag', 'z'), a('', 'v'), a('log', 'e'), a('', 'm'), a('finish', '*')), 1)
    store.reap(1)
  }
  t.same(store.stats.limits, { attributesDropped: 3, valuesTruncated: 3, eventsDropped: 3, linksDropped: 3 }, 'one of each per request')
  t.same(sink.byName('c').attributes, { x: 'lon', y: 'v' })
  t.equal(cap.lines.filter((l) => /span limits hit/.test(String(l.msg))).length, 1, 'one line for three intervals with hits (rate-limited)')
  t.equal(sink.byName('c').droppedLinks, 1)
})
