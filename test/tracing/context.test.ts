// Joining and continuing traces through the grammar: extract=, inject=,
// time= and sampling, without sockets.

import t from 'tap'
import { type Action, type Message, type NamedValue, type TypedValue, tv } from '../../src/spop/index.js'
import { ManualClock } from '../../src/tracing/clock.js'
import { GrammarInterpreter } from '../../src/tracing/grammar.js'
import type { Propagator } from '../../src/tracing/propagation.js'
import type { SamplerConfig } from '../../src/tracing/sampler.js'
import { TraceStore } from '../../src/tracing/trace-store.js'
import { MemorySink } from '../helpers/memory-sink.js'

const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const P = '00f067aa0ba902b7'

function setup(opts: { sampler?: SamplerConfig; propagators?: Propagator[] } = {}) {
  const sink = new MemorySink()
  const clock = new ManualClock()
  const store = new TraceStore({ sink, ...opts })
  const interp = new GrammarInterpreter(store)
  const apply = (...messages: Message[]): Action[] => {
    const out: Action[] = []
    for (const m of messages) interp.apply('e1', m, clock.nowUs(), out)
    return out
  }
  return { sink, clock, store, apply }
}
const a = (name: string, v: TypedValue | string): NamedValue => ({ name, ...(typeof v === 'string' ? tv.string(v) : v) })
const m = (...args: NamedValue[]): Message => ({ name: 'm', args })
const id = (v = 'r1') => a('id', v)
const vars = (actions: Action[]) => Object.fromEntries(actions.map((x) => [x.name, x.type === 1 ? x.value.value : null]))

t.test('extract in the message that starts the root: the tree joins the remote trace', async (t) => {
  const { sink, store, apply } = setup()
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-01`), a('extract', 'tracestate'), a('', 'rojo=1'), a('span', 'root'), a('finish', '*')))
  const root = sink.byName('root')
  t.same([root.traceId, root.parentSpanId, root.parentIsRemote, root.traceFlags, root.traceState], [T, P, true, 1, 'rojo=1'])
  t.same(Object.fromEntries(store.stats.contextsExtracted), { tracecontext: 1 })
})

t.test('extract after the root (the 9-span flow): every span moves to the remote trace', async (t) => {
  const { sink, apply } = setup()
  apply(m(id(), a('span', 'HAProxy session'), a('span', 'Client session'), a('child-of', 'HAProxy session'), a('span', 'early'), a('follows-from', 'Client session'), a('finish', 'early')))
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-01`), a('span', 'Frontend HTTP request'), a('child-of', 'Client session')))
  apply(m(id(), a('finish', '*')))
  t.equal(sink.spans.length, 4)
  for (const s of sink.spans) t.equal(s.traceId, T, `${s.name} in the remote trace`)
  t.equal(sink.byName('early').links[0]!.traceId, T, 'links follow')
  t.same([sink.byName('HAProxy session').parentSpanId, sink.byName('HAProxy session').parentIsRemote], [P, true])
  t.equal(sink.byName('Client session').parentIsRemote, false)
})

t.test('an invalid context starts a new trace and is counted', async (t) => {
  const { sink, store, apply } = setup()
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${'0'.repeat(32)}-${P}-01`), a('span', 'root'), a('finish', '*')))
  apply(m(id('r2'), a('extract', 'traceparent'), a('', 'garbage'), a('span', 'root2'), a('finish', '*')))
  apply(m(id('r3'), a('extract', 'traceparent'), a('', tv.null()), a('span', 'root3'), a('finish', '*')))
  t.not(sink.byName('root').traceId, '0'.repeat(32))
  t.equal(sink.byName('root').parentSpanId, '')
  t.same(Object.fromEntries(store.stats.contextsInvalid), { 'tracecontext:zero_id': 1, 'tracecontext:malformed': 1 })
  t.equal(sink.spans.length, 3, 'traced anyway; an absent header (NULL) is no error')
})

t.test('inject: set-var actions with the chosen span context, in each configured format', async (t) => {
  const { sink, store, apply } = setup({ propagators: ['tracecontext', 'baggage', 'b3', 'jaeger'] })
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-01`), a('extract', 'baggage'), a('', 'tenant=acme'), a('span', 'root')))
  const actions = apply(m(id(), a('span', 'Backend HTTP request'), a('child-of', 'root'), a('inject', 'Backend HTTP request')))
  apply(m(id(), a('finish', '*')))
  const be = sink.byName('Backend HTTP request')
  t.equal(be.traceId, T)
  t.same(vars(actions), {
    traceparent: `00-${T}-${be.spanId}-01`,
    baggage: 'tenant=acme',
    b3: `${T}-${be.spanId}-1`,
    uber_trace_id: `${T}:${be.spanId}:0:1`,
  })
  for (const x of actions) t.same([x.type, x.scope], [1, 2], 'set-var in txn scope')
  t.equal(sink.byName('root').attributes['baggage.tenant'], 'acme', 'incoming baggage recorded')
  t.equal(be.attributes['baggage.tenant'], 'acme', 'and inherited')
  t.equal(store.stats.contextsInjected, 1)
  const none = apply(m(id('x'), a('span', 'r'), a('inject', ''), a('inject', 'nope')))
  t.same(Object.keys(vars(none)).sort(), ['b3', 'traceparent', 'uber_trace_id'], 'empty name: the current span; an unknown name: nothing')
  t.equal(store.stats.argumentErrors.get('inject_not_found'), 1)
})

t.test('a context arriving after one was injected cannot move the trace', async (t) => {
  const { sink, store, apply } = setup()
  const out = apply(m(id(), a('span', 'root'), a('inject', 'root')))
  const injectedTrace = String(vars(out).traceparent).split('-')[1]
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-01`), a('finish', '*')))
  t.equal(sink.byName('root').traceId, injectedTrace)
  t.equal(store.stats.contextsInvalid.get('too_late'), 1)
})

t.test('sampling: parent-based follows sampled=0; nothing exported, context still propagated', async (t) => {
  const { sink, store, apply } = setup()
  const out = apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-00`), a('span', 'root'), a('tag', 'k'), a('', 'v'), a('inject', 'root')))
  apply(m(id(), a('finish', '*')))
  t.equal(sink.spans.length, 0, 'sampled out: nothing exported')
  t.match(vars(out).traceparent, new RegExp(`^00-${T}-[0-9a-f]{16}-00$`), 'downstream is told not to sample')
  t.equal(store.stats.treesSampledOut, 1)
  // The same with the context arriving after the root: the tree is dropped at the end.
  apply(m(id('late'), a('span', 'root')))
  apply(m(id('late'), a('extract', 'traceparent'), a('', `00-${T}-${P}-00`), a('span', 'child'), a('child-of', 'root'), a('finish', '*')))
  t.equal(sink.spans.length, 0)
})

t.test('samplers: always_off, ratio 0, and a rate limit', async (t) => {
  const off = setup({ sampler: { name: 'always_off', ratio: 1, rateLimit: 0 } })
  off.apply(m(id(), a('span', 'r'), a('finish', '*')))
  t.equal(off.sink.spans.length, 0)
  const ratio = setup({ sampler: { name: 'traceidratio', ratio: 0, rateLimit: 0 } })
  ratio.apply(m(id(), a('span', 'r'), a('finish', '*')))
  t.equal(ratio.sink.spans.length, 0)
  const limited = setup({ sampler: { name: 'always_on', ratio: 1, rateLimit: 5 } })
  for (let i = 0; i < 20; i++) limited.apply(m(id(`r${i}`), a('span', 'r'), a('finish', '*')))
  t.equal(limited.sink.trees.length, 5, '5 traces per second')
  t.equal(limited.store.stats.treesSampledOut, 15)
})

t.test('a message with only extract= keeps the context for the spans that follow', async (t) => {
  const { sink, apply } = setup()
  apply(m(id(), a('extract', 'traceparent'), a('', `00-${T}-${P}-01`)))
  apply(m(id(), a('span', 'root'), a('finish', '*')))
  t.same([sink.byName('root').traceId, sink.byName('root').parentSpanId], [T, P])
})

t.test('B3 is read only when configured', async (t) => {
  const b3 = setup({ propagators: ['b3'] })
  b3.apply(m(id(), a('extract', 'b3'), a('', `${T}-${P}-1`), a('span', 'root'), a('finish', '*')))
  t.equal(b3.sink.byName('root').traceId, T)
  const w3c = setup()
  w3c.apply(m(id(), a('extract', 'b3'), a('', `${T}-${P}-1`), a('span', 'root'), a('finish', '*')))
  t.not(w3c.sink.byName('root').traceId, T)
})

t.test("time=: spans use HAProxy's own event times", async (t) => {
  const { sink, clock, store, apply } = setup()
  const base = clock.nowUs()
  apply(m(id(), a('time', tv.int64(base - 5000)), a('span', 'root')))
  apply(m(id(), a('span', 'c'), a('child-of', 'root'), a('time', tv.int64(base - 3000)), a('log', 'l'), a('', 'x')))
  apply(m(id(), a('time', String(Math.floor((base - 1000) / 1000))), a('finish', 'c')))
  apply(m(id(), a('time', tv.int64(Math.floor(base / 1e6))), a('finish', '*')))
  const root = sink.byName('root')
  const c = sink.byName('c')
  t.equal(root.startUs, base - 5000, 'microseconds')
  t.equal(c.startUs, base - 3000, 'time= anywhere in the message applies to all of it')
  t.equal(c.events[0]!.timeUs, base - 3000)
  t.equal(c.endUs, base - 1000, 'milliseconds, as a string')
  t.equal(root.endUs, Math.max(root.startUs, Math.floor(base / 1e6) * 1e6), 'seconds')
  apply(m(id('x'), a('time', tv.int64(1)), a('span', 'r'), a('finish', '*')))
  apply(m(id('y'), a('time', 'soon'), a('span', 'r'), a('finish', '*')))
  t.same([store.stats.argumentErrors.get('time_out_of_range'), store.stats.argumentErrors.get('bad_time')], [1, 1])
})

// The 9-span flow: the root starts at on-client-session, the request's
// context headers arrive with a later message.
const flowStart = (apply: (...m: Message[]) => Action[], rid: string) => {
  apply(m(id(rid), a('span', 'HAProxy session'), a('baggage', 'haproxy_id'), a('', rid), a('span', 'Client session'), a('child-of', 'HAProxy session')))
  apply(m(id(rid), a('span', 'Frontend TCP request'), a('child-of', 'Client session'), a('tag', 'early'), a('', 'yes'), a('finish', 'Frontend TCP request')))
}
const flowEnd = (apply: (...m: Message[]) => Action[], rid: string, headers: Array<[string, string]>) => {
  const ex = headers.flatMap(([h, v]) => [a('extract', h), a('', v)])
  apply(m(id(rid), ...ex, a('span', 'Frontend HTTP request'), a('child-of', 'Client session'), a('tag', 'late'), a('', 'yes')))
  return apply(m(id(rid), a('inject', 'Frontend HTTP request'), a('finish', '*')))
}

t.test('one trace, one sampled flag: a late context under a sampler that is not parent-based', async (t) => {
  const samplers: SamplerConfig[] = [
    { name: 'always_on', ratio: 1, rateLimit: 0 },
    { name: 'traceidratio', ratio: 1, rateLimit: 0 },
    { name: 'parentbased_always_on', ratio: 1, rateLimit: 0 },
  ]
  for (const sampler of samplers) {
    const { sink, apply } = setup({ sampler })
    flowStart(apply, 'r1')
    const out = flowEnd(apply, 'r1', [['traceparent', `00-${T}-${P}-00`]])
    if (sampler.name === 'parentbased_always_on') {
      t.equal(sink.spans.length, 0, `${sampler.name}: the upstream's "not sampled" wins, for the spans before it too`)
      t.match(vars(out).traceparent, /-00$/)
      continue
    }
    // The sampler decides, not the upstream flag; every span says so, those started before the context too.
    t.equal(sink.spans.length, 4, `${sampler.name}: sampled whatever the upstream flag`)
    t.same([...new Set(sink.spans.map((s) => s.traceFlags))], [1], `${sampler.name}: every span has the same flag`)
    t.same([...new Set(sink.spans.map((s) => s.traceId))], [T], `${sampler.name}: one trace`)
    t.match(vars(out).traceparent, /-01$/, `${sampler.name}: downstream is told the same`)
  }
})

t.test('a late "sampled" upstream under a parent-based sampler: the spans before it were recorded whole', async (t) => {
  for (const sampler of [
    { name: 'parentbased_traceidratio', ratio: 0, rateLimit: 0 },
    { name: 'parentbased_always_off', ratio: 1, rateLimit: 0 },
  ] as SamplerConfig[]) {
    const { sink, store, apply } = setup({ sampler })
    flowStart(apply, 'r1')
    const out = flowEnd(apply, 'r1', [['traceparent', `00-${T}-${P}-01`]])
    t.equal(sink.spans.length, 4, `${sampler.name}: the upstream's "sampled" wins`)
    t.same([...new Set(sink.spans.map((s) => s.traceFlags))], [1])
    t.equal(sink.byName('HAProxy session').attributes['haproxy.unique_id'], 'r1', 'the root has its attributes')
    t.equal(sink.byName('HAProxy session').attributes['baggage.haproxy_id'], 'r1')
    t.equal(sink.byName('Frontend TCP request').attributes.early, 'yes', 'a span ended before the context has its tags')
    t.match(vars(out).traceparent, /-01$/)
    t.equal(store.stats.treesSampledOut, 0)
    // No context at all: the sampler's own decision stands, final once the headers were seen.
    flowStart(apply, 'r2')
    flowEnd(apply, 'r2', [['traceparent', '']])
    t.equal(sink.spans.length, 4, `${sampler.name}: a request without a context is sampled out`)
    t.equal(store.stats.treesSampledOut, 1)
  }
})

t.test('once the headers were seen, the decision is final: open spans stop recording', async (t) => {
  const { store, apply } = setup({ sampler: { name: 'parentbased_always_off', ratio: 1, rateLimit: 0 } })
  flowStart(apply, 'r1')
  const tree = store.get('e1', 'r1')!
  t.same([tree.sampled, tree.decided, tree.recording], [false, false, true], 'before the headers: recording, provisionally')
  apply(m(id('r1'), a('extract', 'traceparent'), a('', tv.null()), a('span', 'Frontend HTTP request'), a('child-of', 'Client session')))
  t.same([tree.sampled, tree.decided, tree.recording], [false, true, false])
  t.equal(tree.open.get('HAProxy session')!.recording, false, 'open spans stop recording')
  t.equal(tree.open.get('Frontend HTTP request')!.recording, false)
  // A sampler that ignores the upstream decides once and for all, at the root.
  const on = setup({ sampler: { name: 'always_on', ratio: 1, rateLimit: 0 } })
  on.apply(m(id('x'), a('span', 'root')))
  t.equal(on.store.get('e1', 'x')!.decided, true)
})

t.test('B3 sampling-only forms (b3: 0 / 1 / d, X-B3-Sampled, X-B3-Flags): honoured, not malformed', async (t) => {
  const { sink, store, apply } = setup({ propagators: ['b3', 'b3multi'], sampler: { name: 'parentbased_traceidratio', ratio: 0, rateLimit: 0 } })
  // b3: 1 (accept): sampled although the ratio is 0; a new trace (no ids came).
  let out = apply(m(id('one'), a('extract', 'b3'), a('', '1'), a('span', 'root'), a('inject', 'root'), a('finish', '*')))
  const one = sink.byName('root')
  t.equal(one.parentSpanId, '', 'no ids: a new trace')
  t.match(vars(out).b3, new RegExp(`^${one.traceId}-${one.spanId}-1$`))
  // b3: 0 (deny) under parentbased_always_on: not sampled, downstream told so.
  const deny = setup({ propagators: ['b3'] })
  out = deny.apply(m(id('zero'), a('extract', 'b3'), a('', '0'), a('span', 'root'), a('inject', 'root'), a('finish', '*')))
  t.equal(deny.sink.spans.length, 0, 'b3: 0: nothing exported')
  t.match(vars(out).b3, /-0$/, 'and the server is told not to sample')
  t.equal(deny.store.stats.contextsInvalid.size, 0, 'not counted as malformed')
  // b3: d (debug) and X-B3-Flags: 1, after the root (late), with a rate limit that is used up.
  const dbg = setup({ propagators: ['b3', 'b3multi'], sampler: { name: 'parentbased_always_on', ratio: 1, rateLimit: 1 } })
  dbg.apply(m(id('first'), a('span', 'root'), a('finish', '*')))
  dbg.apply(m(id('d'), a('span', 'root')))
  dbg.apply(m(id('d'), a('extract', 'b3'), a('', 'd'), a('finish', '*')))
  dbg.apply(m(id('flags'), a('extract', 'x-b3-flags'), a('', '1'), a('span', 'root'), a('finish', '*')))
  dbg.apply(m(id('limited'), a('extract', 'x-b3-sampled'), a('', '1'), a('span', 'root'), a('finish', '*')))
  t.equal(dbg.sink.trees.length, 3, 'the first trace, and both debug ones past the rate limit; not the plain "sampled"')
  t.equal(store.stats.contextsInvalid.size, 0)
  // X-B3-Sampled: 0 alone, late.
  apply(m(id('late0'), a('span', 'root')))
  apply(m(id('late0'), a('extract', 'x-b3-sampled'), a('', '0'), a('finish', '*')))
  t.equal(sink.trees.length, 1, 'denied')
})
