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
