// The export pipeline under faults: a full queue, a collector that fails or
// is gone and comes back, a crashing worker, and the shutdown flush.

import t, { type Test } from 'tap'
import { DEFAULT_EXPORT_CONFIG, type ExportConfig } from '../../src/export/config.js'
import { ExportPool } from '../../src/export/pool.js'
import { SpanQueue } from '../../src/export/span-queue.js'
import { ExportStats } from '../../src/export/stats.js'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { nineSpanFlow } from '../../harness/flows/nine-span.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { freePort } from '../../harness/ports.js'
import { captureLogger, silentLogger } from '../helpers/logger.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { tree } from '../helpers/spans.js'
import { eventually } from '../../harness/wait.js'

async function pipeline(t: Test, inThread: boolean, over: Partial<ExportConfig>, probeMs?: number) {
  const stats = new ExportStats()
  const config: ExportConfig = { ...DEFAULT_EXPORT_CONFIG, scheduledDelayMs: 20, ...over }
  const cap = captureLogger('warn')
  const pool = new ExportPool({ config, scope: { name: 'test', version: '0' }, stats, logger: cap.logger, inThread })
  await pool.start()
  const queue = new SpanQueue(pool, config, stats, cap.logger, undefined, probeMs)
  t.teardown(() => pool.shutdown(1000))
  return { stats, pool, queue, logs: cap.lines }
}

const traceId = (i: number) => i.toString(16).padStart(32, 'c')
// Each pool test runs twice: with export worker threads, and with the
// runner in the calling thread (what the tracing thread uses).
for (const inThread of [false, true]) {
  const where = inThread ? ' (in the calling thread)' : ''

  t.test(`queue full: whole trees dropped and counted, memory bounded${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { delayMs: 1500 } })
    t.teardown(() => receiver.close())
    const { stats, queue, logs } = await pipeline(t, inThread, {
      endpoint: receiver.tracesUrl,
      maxQueueSize: 40,
      maxBatchSize: 8,
      maxConcurrentExports: 1,
    })
    for (let i = 0; i < 50; i++) queue.push(tree(traceId(i)))
    t.ok(stats.queueDepth + stats.inFlight <= 40, 'never more than maxQueueSize held')
    const dropped = stats.spansDropped.get('queue_full') ?? 0
    t.equal(dropped % 4, 0, 'whole trees (4 spans) dropped')
    t.equal(stats.spansQueued + dropped, 200, 'every span either queued or counted as dropped')
    t.ok(logs.some((l) => /export queue full/.test(String(l.msg))), 'logged')
    t.equal(logs.filter((l) => /export queue full/.test(String(l.msg))).length, 1, 'once, not per tree')
    t.ok(await eventually(() => stats.spansExported === stats.spansQueued, 10_000), 'what was queued is exported')
    t.equal(receiver.spans.length, stats.spansExported)
  })

  t.test(`collector failing (503) then back: the batch waits and is sent again, nothing lost${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 503 } })
    t.teardown(() => receiver.close())
    const { stats, queue, logs } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 300, maxBatchSize: 4 })
    queue.push(tree(traceId(1)))
    t.ok(await eventually(() => stats.batchesFailed > 0, 5000), 'the export failed')
    t.ok(stats.failingSince > 0, 'failing since is set')
    t.equal(stats.spansDropped.get('export_failed') ?? 0, 0, 'a retryable failure drops nothing')
    t.ok(await eventually(() => stats.queueDepth === 4 && stats.inFlight === 0, 3000), 'the batch is held for a retry')
    t.ok(logs.some((l) => l.msg === 'export failed; the batch is kept and sent again'))
    receiver.setResponse()
    queue.push(tree(traceId(2)))
    t.ok(await eventually(() => stats.spansExported === 8, 10_000), 'the retried batch and the new one are delivered')
    t.equal(stats.failingSince, 0)
    t.same(new Set(receiver.spans.map((s) => s.traceId)), new Set([traceId(1), traceId(2)]))
  })

  t.test(`collector back: batches kept for a retry go at once, not after their backoff${where}`, async (t) => {
    // The 503s ask for 30 s; once another batch is accepted, nothing waits that long.
    const receiver = await startOtlpReceiver({ response: { status: 503, retryAfterSeconds: 30 } })
    t.teardown(() => receiver.close())
    const { stats, queue } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 10_000, maxBatchSize: 4 })
    queue.push(tree(traceId(1)))
    t.ok(await eventually(() => stats.batchesFailed === 1, 10_000), 'the export failed')
    t.ok(await eventually(() => stats.queueDepth === 4 && stats.inFlight === 0, 10_000), 'the failed batch is held for a retry')
    t.same(receiver.requests.map((r) => r.status), [503], 'it failed with the 503 asking for 30 s')
    receiver.setResponse()
    const back = Date.now()
    queue.push(tree(traceId(2)))
    t.ok(await eventually(() => stats.spansExported === 8, 10_000), 'the held batch is delivered with the new one')
    t.ok(Date.now() - back < 10_000, 'well before the 30 s the collector asked for')
    t.equal(stats.queueDepth, 0, 'nothing left waiting')
    t.same(new Set(receiver.spans.map((s) => s.traceId)), new Set([traceId(1), traceId(2)]))
  })

  t.test(`http/json: a failed batch comes back as its request body and is sent again as it was${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 503, retryAfterSeconds: 1 } })
    t.teardown(() => receiver.close())
    const { stats, queue } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, protocol: 'http/json', timeoutMs: 300, maxBatchSize: 4 })
    queue.push(tree(traceId(6)))
    t.ok(await eventually(() => stats.batchesFailed > 0 && stats.queueDepth === 4, 5000), 'failed, and held for a retry')
    receiver.setResponse()
    t.ok(await eventually(() => stats.spansExported === 4, 10_000), 'delivered by the retry')
    t.same(receiver.requests.map((r) => [r.status, r.contentType]), [[503, 'application/json'], [200, 'application/json']], 'the same JSON request, sent twice')
    t.same(receiver.spans.map((s) => s.traceId), Array(4).fill(traceId(6)))
  })

  t.test(`collector back, nothing new to send: a batch waiting out its backoff probes, and goes within the probe interval${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 503 } })
    t.teardown(() => receiver.close())
    const { stats, queue } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 300, maxBatchSize: 4 }, 200)
    queue.push(tree(traceId(7)))
    // Backoffs of 1, 2, 4, 8... s would take minutes to reach 12 attempts.
    t.ok(await eventually(() => stats.batchesFailed >= 12, 10_000), `probed while failing: ${stats.batchesFailed} requests`)
    t.equal(stats.spansDropped.get('export_failed') ?? 0, 0, 'probes do not use up the batch (10 attempts at most)')
    t.equal(stats.queueDepth, 4, 'still kept')
    receiver.setResponse()
    const back = Date.now()
    t.ok(await eventually(() => stats.spansExported === 4, 5000), 'delivered once the collector is back')
    t.ok(Date.now() - back < 1500, `${Date.now() - back} ms after, not after its backoff`)
    t.same(receiver.spans.map((s) => s.traceId), Array(4).fill(traceId(7)))
  })

  t.test(`a batch the collector asked to wait (Retry-After) is not probed early${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 503, retryAfterSeconds: 2 } })
    t.teardown(() => receiver.close())
    const { stats, queue } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 300, maxBatchSize: 4 }, 100)
    queue.push(tree(traceId(8)))
    t.ok(await eventually(() => stats.batchesFailed === 1 && stats.queueDepth === 4, 5000), 'failed, and held')
    t.notOk(await eventually(() => stats.batchesFailed > 1, 1000), 'not sent again within the 2 s it asked for (ten probe intervals)')
    receiver.setResponse()
    t.ok(await eventually(() => stats.spansExported === 4, 5000), 'sent when its time came')
  })

  t.test(`collector unreachable: failures counted, the batch kept for a retry, no crash${where}`, async (t) => {
    const port = await freePort()
    const { stats, queue, logs } = await pipeline(t, inThread, { endpoint: `http://127.0.0.1:${port}/v1/traces`, timeoutMs: 300, maxBatchSize: 4 })
    queue.push(tree(traceId(3)))
    t.ok(await eventually(() => stats.batchesFailed >= 1, 5000))
    t.ok(logs.some((l) => l.msg === 'export failed; the batch is kept and sent again' && l.target === `http://127.0.0.1:${port}/v1/traces`), 'logged with the endpoint')
    t.equal(stats.spansDropped.get('export_failed') ?? 0, 0)
  })

  t.test(`collector refusing the data (400): not retried, dropped and counted${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 400 } })
    t.teardown(() => receiver.close())
    const { stats, queue, logs } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 300, maxBatchSize: 4 })
    queue.push(tree(traceId(4)))
    t.ok(await eventually(() => stats.spansDropped.get('export_failed') === 4, 5000))
    t.equal(receiver.rejectedRequests, 1, 'sent once')
    t.ok(logs.some((l) => l.msg === 'export failed; spans dropped'))
  })

  t.test(`a crashing worker is restarted; only its in-flight spans are lost${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { delayMs: 500 } })
    t.teardown(() => receiver.close())
    const { stats, pool, queue } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, maxBatchSize: 4, numWorkers: 2 })
    queue.push(tree(traceId(4)))
    t.ok(await eventually(() => stats.inFlight === 4), 'a batch is in flight')
    pool.crash(0)
    pool.crash(1)
    // A worker loads its modules again: seconds when the machine's two cores are busy (a bound, not a speed).
    const n = inThread ? 1 : 2 // in the calling thread, one runner whatever numWorkers says
    t.ok(await eventually(() => stats.workerRestarts === n && stats.workersUp === n, 30_000), `${n} worker(s) restarted`)
    t.equal(stats.spansDropped.get('worker_crash'), 4, 'the in-flight batch counted as lost')
    t.equal(stats.inFlight, 0)
    receiver.setResponse()
    queue.push(tree(traceId(5)))
    t.ok(await eventually(() => stats.spansExported === 4, 5000), 'export works after the restart')
  })

  t.test(`request bodies go round: a few buffers carry every batch, a retried one too${where}`, async (t) => {
    const receiver = await startOtlpReceiver({ response: { status: 503 } })
    t.teardown(() => receiver.close())
    const { stats, queue, pool } = await pipeline(t, inThread, { endpoint: receiver.tracesUrl, timeoutMs: 2000, maxBatchSize: 8 })
    queue.push(tree(traceId(1)))
    queue.push(tree(traceId(2)))
    t.ok(await eventually(() => stats.batchesFailed === 1 && stats.queueDepth === 8 && stats.inFlight === 0, 5000), 'a batch held for a retry')
    receiver.setResponse()
    // As HAProxy's traffic comes: a batch now and then, each sent before the next.
    let delivered = true
    for (let i = 0; i < 60; i++) {
      queue.push(tree(`${(i + 3).toString(16).padStart(4, '0')}${'d'.repeat(28)}`))
      queue.push(tree(`${(i + 3).toString(16).padStart(4, '0')}${'e'.repeat(28)}`))
      delivered &&= await eventually(() => stats.inFlight === 0 && stats.queueDepth === 0, 5000)
    }
    t.ok(delivered, 'each batch sent before the next')
    t.equal(stats.spansExported, 61 * 8, 'every span delivered, the retried batch too')
    t.equal(receiver.spans.length, 61 * 8)
    t.equal(stats.batchesExported, 61)
    t.ok(pool.bodies.allocated <= 3, `${pool.bodies.allocated} buffers allocated for 62 requests (one retried)`)
    t.ok(pool.bodies.kept >= 1, 'back from the worker, waiting for the next batch')
  })
}

t.test('daemon: shutdown flushes every span, open trees marked incomplete', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_EXPORT_CONFIG, endpoint: receiver.tracesUrl, scheduledDelayMs: 60_000 },
    },
    silentLogger(),
    // NOTIFYs answered but not yet applied must be applied before the open trees end.
    { traceBatchDelayMs: 60_000 },
  )
  const h = await FakeHaproxy.connect(daemon.address)
  await h.hello()
  let sid = 1
  const send = async (frames: ReturnType<typeof nineSpanFlow>) => {
    for (const messages of frames) {
      h.notify(sid++, 1, messages)
      t.equal((await h.next()).type, 'ack')
    }
  }
  await send(nineSpanFlow({ uniqueId: 'complete-1' }))
  await send(nineSpanFlow({ uniqueId: 'open-1' }).slice(0, 3)) // 4 spans started, 1 finished
  t.equal(receiver.spans.length, 0, 'nothing exported yet (long batch delay)')
  await daemon.close()
  t.equal(receiver.spans.length, 9 + 4, 'the complete tree and the open one, all spans')
  const open = receiver.spans.filter((s) => s.attributes['haproxy.unique_id'] === 'open-1' || s.attributes['baggage.haproxy_id'] === 'open-1')
  t.equal(open.length, 4)
  const unfinished = open.filter((s) => s.attributes['spoa_tracer.incomplete'] === 'shutdown')
  t.equal(unfinished.length, 3, 'the 3 spans still open were ended at shutdown')
  for (const s of unfinished) t.equal(s.status.code, 2)
  t.equal(daemon.exportStats.spansDropped.size, 0, 'nothing dropped')
  await h.waitClosed()
})

t.test('daemon: idle trees are reaped and exported with status ERROR', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      tree: { ...DEFAULT_CONFIG.tree, idleTtlMs: 300, timeoutMessage: 'server timeout' },
      export: { ...DEFAULT_EXPORT_CONFIG, endpoint: receiver.tracesUrl, scheduledDelayMs: 20 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const h = await FakeHaproxy.connect(daemon.address)
  await h.hello()
  const frames = nineSpanFlow({ uniqueId: 'stuck' }).slice(0, 5) // the backend never answers
  for (const [i, messages] of frames.entries()) {
    h.notify(i + 1, 1, messages)
    await h.next()
  }
  const spans = await receiver.waitForSpans(5, 5000)
  t.equal(daemon.trees.stats.treesReaped, 1)
  const reaped = spans.filter((s) => s.attributes['spoa_tracer.incomplete'] === 'reaped')
  t.same(reaped.map((s) => s.name).sort(), ['Backend HTTP request', 'Client session', 'HAProxy session'])
  for (const s of reaped) t.same([s.status.code, s.status.message], [2, 'server timeout'])
  h.destroy()
})
