// --cpu-sched tracing-idle: the main thread answers, the tracing thread builds
// and exports the trees under SCHED_IDLE. Through a fake HAProxy client and a
// real OTLP receiver: the trees, inject= answered from the tracing thread, the
// counters mirrored on the main thread, the bounds (a tracing thread behind,
// an inject= answered late) and the shutdown flush.

import t, { type Test } from 'tap'
import { DEFAULT_EXPORT_CONFIG, type ExportConfig } from '../../src/export/config.js'
import { type Config, DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { threadPolicy, threadPolicies } from '../../src/daemon/cpu-sched.js'
import { startDaemon } from '../../src/daemon/main.js'
import type { TracingThreadLimits } from '../../src/daemon/tracing-thread.js'
import { type Message, type NamedValue, tv } from '../../src/spop/index.js'
import { nineSpanFlow } from '../../harness/flows/nine-span.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'
import { captureLogger } from '../helpers/logger.js'

const linux = process.platform !== 'linux' ? 'SCHED_IDLE is Linux only' : false
const SCHED_IDLE = 5

const a = (name: string, v: string): NamedValue => ({ name, ...tv.string(v) })
const m = (...args: NamedValue[]): Message => ({ name: 'm', args })

async function setup(t: Test, limits: TracingThreadLimits = {}, over: Partial<Config> = {}, receiverDelayMs = 0) {
  const receiver = await startOtlpReceiver(receiverDelayMs > 0 ? { response: { delayMs: receiverDelayMs } } : {})
  t.teardown(() => receiver.close())
  const cap = captureLogger('info')
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      cpuSched: 'tracing-idle',
      ...over,
      export: { ...DEFAULT_EXPORT_CONFIG, endpoint: receiver.tracesUrl, scheduledDelayMs: 20, ...over.export },
    },
    cap.logger,
    { tracingThread: limits },
  )
  t.teardown(() => daemon.close())
  const h = await FakeHaproxy.connect(daemon.address)
  t.teardown(() => h.destroy())
  await h.hello()
  return { receiver, daemon, h, logs: cap.lines }
}

for (const numWorkers of [1, 0]) {
  const how = numWorkers === 0 ? ' (-n 0: the tracing thread sends them)' : ''
  t.test(`the trees are built and exported by the tracing thread, under SCHED_IDLE; the main thread keeps its policy${how}`, { skip: linux }, async (t) => {
    const { receiver, daemon, h } = await setup(t, {}, { export: { numWorkers } as ExportConfig })
    t.equal(daemon.store, null, 'no trace store on the main thread')
    t.equal(threadPolicy(process.pid, process.pid), 0, 'the main thread (which answers HAProxy) keeps SCHED_OTHER')
    t.equal(threadPolicies(process.pid).filter((p) => p === SCHED_IDLE).length, 1, numWorkers === 0 ? 'the tracing thread runs under SCHED_IDLE' : 'the tracing thread runs under SCHED_IDLE (its export worker does not)')
    let sid = 1
    for (const id of ['r1', 'r2']) {
      for (const messages of nineSpanFlow({ uniqueId: id })) {
        h.notify(sid++, 1, messages)
        const ack = await h.next()
        t.same([ack.type, ack.type === 'ack' ? ack.actions : null], ['ack', []], 'answered at once, with no actions')
      }
    }
    const spans = await receiver.waitForSpans(18, 10_000)
    t.equal(spans.length, 18, 'two whole trees')
    t.equal(new Set(spans.map((s) => s.traceId)).size, 2)
    for (const traceId of new Set(spans.map((s) => s.traceId))) {
      const tree = spans.filter((s) => s.traceId === traceId)
      const ids = new Set(tree.map((s) => s.spanId))
      t.equal(tree.filter((s) => s.parentSpanId === '' || s.parentSpanId === undefined).length, 1, 'one root')
      t.ok(tree.every((s) => !s.parentSpanId || ids.has(s.parentSpanId)), 'every parent in the same tree')
    }
    t.ok(await eventually(() => daemon.trees.stats.treesCompleted === 2 && daemon.exportStats.spansExported === 18, 3000), 'the counters reach the main thread')
    t.equal(daemon.tracing.pending, 0, 'nothing waits')
  })
}

t.test('inject=: answered from the tracing thread with the span context; an open tree ended and flushed at shutdown', { skip: linux }, async (t) => {
  const { receiver, daemon, h, logs } = await setup(t)
  h.notify(1, 1, [m(a('id', 'r1'), a('span', 'root'), a('span', 'Backend HTTP request'), a('child-of', 'root'), a('inject', 'Backend HTTP request'))])
  const ack = await h.next()
  if (ack.type !== 'ack') throw new Error(`expected an ACK, got ${ack.type}`)
  const vars = Object.fromEntries(ack.actions.map((x) => [x.name, 'value' in x ? String(x.value.value) : '']))
  t.match(vars.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'the context of the span, in the ACK')
  t.equal(daemon.trees.size, 0, 'not reported yet, or 1')
  t.ok(await eventually(() => daemon.trees.size === 1 && daemon.trees.stats.contextsInjected === 1, 3000), 'one open tree, one context injected')
  t.equal(logs.filter((l) => /^inject= while --cpu-sched tracing-idle/.test(String(l.msg))).length, 1, 'the operator is told once that HAProxy now waits on an idle thread')
  await daemon.close()
  t.equal(receiver.spans.length, 2, 'the open tree was ended and exported at shutdown')
  const be = receiver.spans.find((s) => s.name === 'Backend HTTP request')!
  t.equal(vars.traceparent, `00-${be.traceId}-${be.spanId}-01`, 'the injected context is the exported span')
  t.ok(receiver.spans.every((s) => s.attributes['spoa_tracer.incomplete'] === 'shutdown'))
})

t.test('an inject= the tracing thread answers late: the ACK goes without the context, counted and logged', { skip: linux }, async (t) => {
  const { daemon, h, logs } = await setup(t, { injectWaitMs: 50, injectDelayMs: 400 })
  const started = Date.now()
  h.notify(1, 1, [m(a('id', 'r1'), a('span', 'root'), a('inject', 'root'))])
  const ack = await h.next()
  const ms = Date.now() - started
  t.same([ack.type, ack.type === 'ack' ? ack.actions : null], ['ack', []], 'an empty ACK')
  t.ok(ms < 400, `after the wait (${ms} ms), not after the tracing thread`)
  t.ok(await eventually(() => daemon.trees.stats.argumentErrors.get('inject_late') === 1, 3000), 'counted')
  t.ok(logs.some((l) => /did not answer an inject= within 50 ms/.test(String(l.msg))), 'logged')
  t.ok(await eventually(() => daemon.trees.size === 1, 3000), 'the tree goes on')
})

t.test('a tracing thread behind: NOTIFYs beyond the bound are answered, their messages dropped, counted and logged once', { skip: linux }, async (t) => {
  const { daemon, h, logs } = await setup(t, { maxBehindBytes: 2000 })
  // One read brings them all: the batch is not handed over before its end.
  const frames = nineSpanFlow({ uniqueId: 'r1' })
  const n = 40
  for (let i = 0; i < n; i++) h.notify(i + 1, 1, frames[i % frames.length]!)
  for (let i = 0; i < n; i++) t.equal((await h.next()).type, 'ack')
  const dropped = (): number => daemon.trees.stats.messagesRejected.get('tracing_thread_behind') ?? 0
  t.ok(await eventually(() => dropped() > 0, 3000), `${dropped()} messages dropped`)
  t.ok(dropped() < n, 'not all of them: the first ones fit')
  t.equal(logs.filter((l) => /NOTIFYs behind/.test(String(l.msg))).length, 1, 'one line')
})

t.test('a burst the export cannot take at once: NOTIFYs wait in the tracing thread instead of the queue dropping trees, and their trees are not reaped meanwhile', { skip: linux }, async (t) => {
  // A queue of 400 spans and a collector that takes 1.5 s per request: 100 requests (900 spans) at once.
  const exportOver = { ...DEFAULT_EXPORT_CONFIG, maxQueueSize: 400, maxBatchSize: 100, maxConcurrentExports: 1 }
  delete (exportOver as Partial<typeof exportOver>).endpoint
  // Trees idle for 500 ms are reaped: NOTIFYs that wait longer than that must not count as idleness.
  const tree = { ...DEFAULT_CONFIG.tree, idleTtlMs: 500 }
  const { receiver, daemon, h } = await setup(t, {}, { export: exportOver, tree }, 1500)
  const n = 100
  let sid = 1
  // Interleaved, as requests on several connections are: the first half of one, another whole, the rest of the first.
  for (let i = 0; i < n; i += 2) {
    const a = nineSpanFlow({ uniqueId: `a${i}` })
    const b = nineSpanFlow({ uniqueId: `b${i}` })
    for (const messages of [...a.slice(0, 4), ...b, ...a.slice(4)]) h.notify(sid++, 1, messages)
  }
  for (let i = 1; i < sid; i++) t.equal((await h.next()).type, 'ack')
  const spans = await receiver.waitForSpans(9 * n, 30_000)
  t.equal(spans.length, 9 * n, 'every tree delivered')
  t.ok(await eventually(() => daemon.exportStats.spansExported === 9 * n, 3000))
  t.equal(daemon.exportStats.spansDropped.size, 0, 'nothing dropped by the queue')
  t.equal(daemon.trees.stats.treesReaped, 0, 'no tree reaped while its NOTIFYs waited')
  t.equal(spans.filter((s) => s.attributes['spoa_tracer.incomplete'] !== undefined).length, 0, 'every span complete')
})

t.test('-n 0 (no export worker) without tracing-idle is refused by the configuration', async (t) => {
  const { validateConfig } = await import('../../src/daemon/config.js')
  t.throws(() => validateConfig({ ...DEFAULT_CONFIG, export: { ...DEFAULT_EXPORT_CONFIG, numWorkers: 0 } }), /0 \(no export worker\) needs --cpu-sched tracing-idle/)
  t.doesNotThrow(() => validateConfig({ ...DEFAULT_CONFIG, cpuSched: 'tracing-idle', export: { ...DEFAULT_EXPORT_CONFIG, numWorkers: 0 } }), 'with it: valid')
})

t.test('--log-intake with tracing-idle is refused by the configuration', async (t) => {
  const { validateConfig } = await import('../../src/daemon/config.js')
  t.throws(
    () =>
      validateConfig({
        ...DEFAULT_CONFIG,
        cpuSched: 'tracing-idle',
        logIntake: { ...DEFAULT_CONFIG.logIntake, addresses: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
      }),
    /tracing-idle is for SPOE and cannot take --log-intake/,
  )
})
