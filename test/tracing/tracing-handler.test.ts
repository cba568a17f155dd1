// The tracing handler's batches: NOTIFYs that inject nothing are answered at
// once and applied later, in arrival order and with their arrival times; a
// NOTIFY that injects is answered from a state that includes everything
// before it; failures after the ACK are reported, not thrown.

import t from 'tap'
import { type Message, type NamedValue, type TypedValue, tv } from '../../src/spop/index.js'
import { ManualClock } from '../../src/tracing/clock.js'
import { TraceStore } from '../../src/tracing/trace-store.js'
import { type BatchOptions, createTracingHandler } from '../../src/tracing/tracing-handler.js'
import type { FinishedSpan } from '../../src/tracing/types.js'
import { MemorySink } from '../helpers/memory-sink.js'

const a = (name: string, v: TypedValue | string): NamedValue => ({ name, ...(typeof v === 'string' ? tv.string(v) : v) })
const m = (...args: NamedValue[]): Message => ({ name: 'trace', args })
const id = (v = 'req-1') => a('id', v)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function setup(batch: Partial<BatchOptions> = {}, sink = new MemorySink()) {
  const clock = new ManualClock()
  const store = new TraceStore({ sink })
  const errors: unknown[] = []
  const tracing = createTracingHandler(store, clock, {
    delayMs: 20,
    maxPending: 100,
    maxPendingBytes: 1 << 20,
    onError: (err) => errors.push(err),
    ...batch,
  })
  let frame = 0
  const notify = (...messages: Message[]) => tracing.handle(messages, { engineId: 'e1', streamId: 1, frameId: ++frame, size: 100, frame: Buffer.alloc(0), messagesAt: 0 })
  return { sink, clock, store, tracing, errors, notify }
}

t.test('answered at once, applied after the delay, with the time each NOTIFY arrived', async (t) => {
  const { sink, clock, tracing, notify } = setup()
  const t0 = clock.nowUs()
  t.same(notify(m(id(), a('span', 'root'))), [], 'empty ACK at once')
  clock.advance(5)
  t.same(notify(m(id(), a('span', 'child'), a('child-of', 'root'))), [])
  clock.advance(5)
  t.same(notify(m(id(), a('finish', '*'))), [])
  clock.advance(1000) // time passes before the batch runs: the spans must not see it
  t.equal(tracing.pending, 3, 'three NOTIFYs wait')
  t.equal(sink.spans.length, 0, 'nothing applied yet')
  const deadline = Date.now() + 2000
  while (tracing.pending > 0 && Date.now() < deadline) await sleep(5)
  t.equal(tracing.pending, 0, 'the batch ran within the delay')
  t.equal(sink.spans.length, 2)
  const root = sink.byName('root')
  const child = sink.byName('child')
  t.equal(root.startUs, t0, 'root starts when its NOTIFY arrived')
  t.equal(child.startUs, t0 + 5_000, 'child starts when its NOTIFY arrived')
  t.equal(root.endUs, t0 + 10_000, 'finish=* at the arrival of the last NOTIFY, not when the batch ran')
  t.equal(child.parentSpanId, root.spanId, 'applied in order: child-of found its parent')
})

t.test('a NOTIFY with inject= first applies everything waiting, then answers', async (t) => {
  const { sink, tracing, notify } = setup({ delayMs: 60_000 })
  notify(m(id(), a('span', 'root')))
  notify(m(id(), a('span', 'Backend HTTP request'), a('child-of', 'root')))
  t.equal(tracing.pending, 2)
  const actions = notify(m(id(), a('inject', 'Backend HTTP request')))
  t.equal(tracing.pending, 0, 'the waiting NOTIFYs were applied first')
  const tp = actions.find((x) => x.name === 'traceparent')
  t.ok(tp, 'the injected span exists: the ACK carries its traceparent')
  notify(m(id(), a('finish', '*')))
  tracing.drain()
  const backend = sink.byName('Backend HTTP request')
  t.equal(tp!.type === 1 ? String(tp!.value.value) : '', `00-${backend.traceId}-${backend.spanId}-01`, 'the context of the span that was exported')
  t.equal(backend.parentSpanId, sink.byName('root').spanId)
})

t.test('maxPending: a full batch is applied right after the read that filled it, not in it', async (t) => {
  const { sink, tracing, notify } = setup({ delayMs: 60_000, maxPending: 4 })
  for (let i = 0; i < 3; i++) notify(m(id(`r${i}`), a('span', `s${i}`), a('finish', '*')))
  t.equal(tracing.pending, 3)
  t.equal(sink.spans.length, 0)
  notify(m(id('r3'), a('span', 's3'), a('finish', '*')))
  t.equal(tracing.pending, 4, 'the fourth NOTIFY filled the batch: its ACK (and its read\'s) go first')
  for (let turn = 0; turn < 100 && tracing.pending > 0; turn++) await new Promise((r) => setImmediate(r))
  t.equal(tracing.pending, 0, 'applied in the next turns of the event loop, without waiting for the delay (60 s)')
  t.equal(sink.spans.length, 4)
})

t.test('the delay applies a batch in slices: a turn of the event loop between two', async (t) => {
  const { sink, tracing, notify } = setup({ delayMs: 5, maxPending: 100_000, maxPendingBytes: 1 << 30 })
  const n = 20_000
  for (let i = 0; i < n; i++) notify(m(id(`r${i}`), a('span', `s${i}`), a('finish', '*')))
  let turns = 0
  let seenPartial = false
  const deadline = Date.now() + 20_000
  while (tracing.pending > 0 && Date.now() < deadline) {
    await new Promise((r) => setImmediate(r))
    turns++
    if (tracing.pending > 0 && tracing.pending < n) seenPartial = true
  }
  t.equal(tracing.pending, 0, 'all applied')
  t.ok(seenPartial, `the loop turned while part of the batch waited (${turns} turns)`)
  t.equal(sink.spans.length, n)
  t.same(
    sink.spans.map((s) => Number(s.name.slice(1))).every((v, i) => v === i),
    true,
    'in arrival order across slices',
  )
})

t.test('the batch timer keeps no process alive; drain() at shutdown applies what waits', async (t) => {
  const { sink, tracing, notify } = setup({ delayMs: 60_000 })
  // Only ref'd timers count as active resources.
  const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = refTimers()
  notify(m(id(), a('span', 'root'), a('finish', '*')))
  t.equal(tracing.pending, 1, 'the NOTIFY waits for its batch')
  t.equal(refTimers(), before, 'the batch timer is unref\'d')
  tracing.drain()
  t.equal(tracing.pending, 0)
  t.equal(sink.spans.length, 1, 'applied by drain(), as at shutdown')
})

t.test('a NOTIFY that throws after its ACK is reported; the ones after it are still applied', async (t) => {
  class FailOnce extends MemorySink {
    failed = false
    override push(spans: FinishedSpan[]): void {
      if (!this.failed) {
        this.failed = true
        throw new Error('sink bug')
      }
      super.push(spans)
    }
  }
  const sink = new FailOnce()
  const { tracing, errors, notify } = setup({ delayMs: 60_000 }, sink)
  notify(m(id('r1'), a('span', 'first'), a('finish', '*')))
  notify(m(id('r2'), a('span', 'second'), a('finish', '*')))
  t.doesNotThrow(() => tracing.drain())
  t.equal(errors.length, 1, 'one failure reported')
  t.match(String(errors[0]), /sink bug/)
  t.same(sink.spans.map((s) => s.name), ['second'], 'the NOTIFY after it was applied')
  t.equal(tracing.pending, 0)
})

t.test('without batch options every NOTIFY is applied before it is answered', async (t) => {
  const sink = new MemorySink()
  const tracing = createTracingHandler(new TraceStore({ sink }), new ManualClock())
  tracing.handle([m(id(), a('span', 'root'), a('finish', '*'))], { engineId: 'e1', streamId: 1, frameId: 1, size: 100, frame: Buffer.alloc(0), messagesAt: 0 })
  t.equal(sink.spans.length, 1)
  t.equal(tracing.pending, 0)
})

t.test('maxPendingBytes: large frames are applied before much waits', async (t) => {
  const sink = new MemorySink()
  const tracing = createTracingHandler(new TraceStore({ sink }), new ManualClock(), {
    delayMs: 60_000,
    maxPending: 1000,
    maxPendingBytes: 100_000,
    onError: () => {},
  })
  const ctx = (frameId: number) => ({ engineId: 'e1', streamId: 1, frameId, size: 40_000, frame: Buffer.alloc(0), messagesAt: 0 })
  tracing.handle([m(id('a'), a('span', 'a'), a('finish', '*'))], ctx(1))
  tracing.handle([m(id('b'), a('span', 'b'), a('finish', '*'))], ctx(2))
  t.equal(tracing.pending, 2, '80,000 bytes wait')
  tracing.handle([m(id('c'), a('span', 'c'), a('finish', '*'))], ctx(3))
  t.equal(tracing.pending, 0, 'the third frame crossed 100,000 bytes: all applied')
  t.equal(sink.spans.length, 3)
})

t.test('injected variables come most important first: an ACK over max-frame-size loses the tail', async (t) => {
  const clock = new ManualClock()
  const store = new TraceStore({ sink: new MemorySink(), propagators: ['baggage', 'tracecontext', 'b3'] })
  const tracing = createTracingHandler(store, clock)
  const handle = (...messages: Message[]) => tracing.handle(messages, { engineId: 'e1', streamId: 1, frameId: 1, size: 100, frame: Buffer.alloc(0), messagesAt: 0 })
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  handle(m(id(), a('extract', 'traceparent'), a('', traceparent), a('extract', 'tracestate'), a('', 'k=v'), a('extract', 'baggage'), a('', 'tenant=acme'), a('span', 'root')))
  const actions = handle(m(id(), a('inject', 'root')), m(id(), a('span', 'client'), a('child-of', 'root'), a('inject', 'client')))
  t.same(
    actions.map((x) => x.name),
    ['traceparent', 'b3', 'traceparent', 'b3', 'tracestate', 'tracestate', 'baggage', 'baggage'],
    'contexts in the configured order, then tracestate, then baggage, whichever message asked',
  )
})
