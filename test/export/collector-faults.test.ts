// The collector misbehaving while HAProxy keeps sending: gone then back,
// slow, answering 429/503 with Retry-After. What must happen, each waited
// for: every NOTIFY is answered meanwhile (HAProxy does not notice), the
// spans held stay within the queue and the ones dropped are counted, the
// exporter says it is failing and, once the collector is back, that it has
// recovered, and export resumes by itself. How fast the ACKs stay and what
// an outage costs in memory is measured, not tested: `npm run bench -- soak
// --outage 60` (docs/BENCHMARKS.md).

import t from 'tap'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { SteadyLoad } from '../../harness/steady-load.js'
import { eventually } from '../../harness/wait.js'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { captureLogger, silentLogger } from '../helpers/logger.js'

const RATE = 250 // requests per second, 9 spans each: 2,250 spans/s
const QUEUE = 1024 // spans: full within a second of the outage

const phase = (prefix: string) => (s: { attributes: Record<string, unknown> }) => String(s.attributes['baggage.haproxy_id'] ?? '').startsWith(`${prefix}-`)

t.test('collector unreachable, then back: ACKs flow, drops are counted, export recovers and says so', async (t) => {
  let receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const port = Number(new URL(receiver.url).port)
  const { logger, lines } = captureLogger('info')
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_CONFIG.export, endpoint: receiver.tracesUrl, scheduledDelayMs: 100, timeoutMs: 2000, maxQueueSize: QUEUE },
    },
    logger,
  )
  t.teardown(() => daemon.close())
  const e = daemon.exportStats
  const dropped = (): number => (e.spansDropped.get('queue_full') ?? 0) + (e.spansDropped.get('export_failed') ?? 0)

  const before = new SteadyLoad(daemon.address, { rate: RATE, prefix: 'before' })
  await receiver.waitForSpan(phase('before'), 10_000)
  t.same((await before.stop()).errors, [])
  t.ok(await eventually(() => e.spansExported === e.spansQueued, 10_000), 'before the outage: everything exported')
  const exportedBefore = e.spansExported

  await receiver.close()
  let heldMax = 0
  const sampler = setInterval(() => (heldMax = Math.max(heldMax, e.queueDepth + e.inFlight)), 20)
  t.teardown(() => clearInterval(sampler))
  const during = new SteadyLoad(daemon.address, { rate: RATE, prefix: 'during' })
  t.ok(await eventually(() => e.failingSince > 0, 20_000), 'the exporter reports failing (for /readyz)')
  t.ok(await eventually(() => dropped() > 0, 30_000), `spans dropped, and counted: ${JSON.stringify(Object.fromEntries(e.spansDropped))}`)
  const acksAtDrop = during.result.acks
  t.ok(await eventually(() => during.result.acks >= acksAtDrop + 8 * 50, 20_000), 'ACKs keep flowing while spans are dropped')
  const r = await during.stop()
  clearInterval(sampler)
  t.same(r.errors, [], 'every NOTIFY answered during the outage')
  t.equal(r.acks, r.notifies)
  t.ok(heldMax > 0 && heldMax <= QUEUE, `spans held meanwhile, never more than the queue: at most ${heldMax}`)
  t.match(lines.find((l) => l.msg === 'export failed; spans dropped' || l.msg === 'export failed; the batch is kept and sent again'), { level: 40 }, 'the outage is logged')

  receiver = await startOtlpReceiver({ port })
  const after = new SteadyLoad(daemon.address, { rate: RATE, prefix: 'after' })
  await receiver.waitForSpan(phase('after'), 30_000)
  t.pass('export resumed by itself')
  t.ok(await eventually(() => e.failingSince === 0, 20_000), 'and the exporter is healthy again')
  t.same((await after.stop()).errors, [])
  t.ok(e.spansExported > exportedBefore)
  const recovered = lines.filter((l) => /^export recovered after/.test(String(l.msg)))
  t.equal(recovered.length, 1, 'the recovery is logged once')
  t.match(recovered[0], { droppedSpans: Number, failedAttempts: Number })
})

t.test('collector slow (3 s per request): the queue bounds what is held, drops are counted, every NOTIFY is answered', async (t) => {
  const receiver = await startOtlpReceiver({ response: { delayMs: 3000 } })
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_CONFIG.export, endpoint: receiver.tracesUrl, scheduledDelayMs: 100, maxQueueSize: 4096, maxBatchSize: 512, maxConcurrentExports: 1 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const e = daemon.exportStats
  const load = new SteadyLoad(daemon.address, { rate: RATE, prefix: 'slow' })
  t.ok(await eventually(() => (e.spansDropped.get('queue_full') ?? 0) > 0, 30_000), 'queue full: drops counted')
  const r = await load.stop()
  t.same(r.errors, [])
  t.equal(r.acks, r.notifies, 'every NOTIFY answered')
  t.ok(e.queueDepth + e.inFlight <= 4096, 'no more held than the queue')
  t.ok(await eventually(() => receiver.spans.length > 0, 10_000), 'the slow collector still receives')
})

t.test('collector answering 429 and 503 with Retry-After: retried, nothing lost', async (t) => {
  const receiver = await startOtlpReceiver({ response: { status: 429, retryAfterSeconds: 1 } })
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_CONFIG.export, endpoint: receiver.tracesUrl, scheduledDelayMs: 50, timeoutMs: 8000 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const load = new SteadyLoad(daemon.address, { rate: 50, connections: 1, prefix: 'retry' })
  t.ok(await eventually(() => load.result.requests >= 20, 10_000))
  const r = await load.stop()
  t.ok(await eventually(() => receiver.rejectedRequests > 0, 10_000), 'the collector refuses with 429')
  receiver.setResponse({ status: 503, retryAfterSeconds: 1 })
  const refused = receiver.rejectedRequests
  t.ok(await eventually(() => receiver.rejectedRequests > refused, 10_000), 'then with 503')
  receiver.setResponse()
  const expected = r.requests * 9
  t.ok(await eventually(() => receiver.spans.length >= expected, 15_000), `all ${expected} spans delivered after the retries`)
  t.equal(daemon.exportStats.spansDropped.get('export_failed') ?? 0, 0, 'none lost')
  t.equal(new Set(receiver.spans.map((s) => s.spanId)).size, receiver.spans.length, 'and none twice')
})
