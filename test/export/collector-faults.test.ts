// The collector misbehaving while HAProxy keeps sending: gone for a minute
// then back, slow, answering 429/503 with Retry-After. HAProxy must not
// notice (ACK latency, every NOTIFY answered), memory stays bounded, drops
// are counted, and export resumes by itself.

import { createServer, connect, type Server, type Socket } from 'node:net'
import t from 'tap'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { freePort } from '../helpers/haproxy.js'
import { percentile, SteadyLoad } from '../helpers/load.js'
import { silentLogger } from '../helpers/logger.js'
import { startOtlpReceiver } from '../helpers/otlp-receiver.js'
import { eventually, sleep } from '../helpers/wait.js'

/** A TCP port that can be switched off (connections refused) and on again, in front of `target`. */
class OnOffProxy {
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  constructor(readonly port: number, private readonly target: number) {}

  async on(): Promise<void> {
    this.server = createServer((c) => {
      const up = connect({ host: '127.0.0.1', port: this.target })
      for (const s of [c, up]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => {})
      }
      c.pipe(up).pipe(c)
    })
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r))
  }

  async off(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
    this.server = null
  }
}

const OUTAGE_S = Number(process.env.SPOA_FAULT_OUTAGE_S ?? 60)
const RATE = 250 // requests per second, 9 spans each: 2,250 spans/s

t.test(`collector unreachable for ${OUTAGE_S} s, then back`, { timeout: (OUTAGE_S + 90) * 1000 }, async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const proxy = new OnOffProxy(await freePort(), Number(new URL(receiver.url).port))
  await proxy.on()
  t.teardown(() => proxy.off())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_CONFIG.export, endpoint: `http://127.0.0.1:${proxy.port}/v1/traces`, scheduledDelayMs: 200, timeoutMs: 5000 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const e = daemon.exportStats

  const warm = new SteadyLoad(daemon.address, RATE, 4, 'before')
  await sleep(3000)
  await warm.stop()
  t.ok(await eventually(() => e.spansExported === e.spansQueued && e.spansQueued > 0, 10_000), 'before the outage: everything exported')
  const exportedBefore = e.spansExported
  global.gc?.()
  const heapBefore = process.memoryUsage().heapUsed

  await proxy.off()
  const load = new SteadyLoad(daemon.address, RATE, 4, 'during')
  let heapMax = 0
  let queueMax = 0
  const sampler = setInterval(() => {
    heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)
    queueMax = Math.max(queueMax, e.queueDepth + e.inFlight)
  }, 250)
  await sleep(OUTAGE_S * 1000)
  const during = await load.stop()
  clearInterval(sampler)

  t.same(during.errors, [], 'every NOTIFY answered during the outage')
  t.equal(during.acks, during.requests * 8)
  const p99 = percentile(during.latencies, 0.99)
  t.ok(p99 < 50, `ACK latency p99 during the outage: ${p99.toFixed(2)} ms (HAProxy does not notice)`)
  const dropped = (e.spansDropped.get('queue_full') ?? 0) + (e.spansDropped.get('export_failed') ?? 0)
  t.ok(dropped > 0, `drops counted: ${JSON.stringify(Object.fromEntries(e.spansDropped))}`)
  t.ok(queueMax <= DEFAULT_CONFIG.export.maxQueueSize, `held spans never above the queue size: max ${queueMax}`)
  const growthMb = (heapMax - heapBefore) / 1048576
  // The bound: the queue holds at most 32,768 spans (encoded: ~300 bytes each, records ~1 KB)
  // plus in-flight request bodies; 150 MB leaves room for the test's own load generator.
  t.ok(growthMb < 150, `heap growth during the outage: ${growthMb.toFixed(1)} MB (bound 150 MB)`)
  t.ok(e.failingSince > 0, 'the exporter reports failing (for /readyz)')

  await proxy.on()
  const after = new SteadyLoad(daemon.address, RATE, 4, 'after')
  await sleep(3000)
  await after.stop()
  t.ok(await eventually(() => receiver.spans.some((s) => String(s.attributes['baggage.haproxy_id'] ?? '').startsWith('after-')), 20_000), 'export resumed by itself')
  t.ok(await eventually(() => e.failingSince === 0, 20_000), 'and the exporter is healthy again')
  t.ok(e.spansExported > exportedBefore)
  t.comment(`outage ${OUTAGE_S} s at ${RATE} req/s: dropped ${dropped} spans, heap +${growthMb.toFixed(1)} MB, queue max ${queueMax}, ACK p99 ${p99.toFixed(2)} ms`)
})

t.test('collector slow (3 s per request): the queue bounds memory, drops are counted, ACKs stay fast', async (t) => {
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
  const load = new SteadyLoad(daemon.address, RATE, 4, 'slow')
  await sleep(6000)
  const r = await load.stop()
  t.same(r.errors, [])
  t.ok(percentile(r.latencies, 0.99) < 50, `ACK p99 ${percentile(r.latencies, 0.99).toFixed(2)} ms`)
  t.ok((daemon.exportStats.spansDropped.get('queue_full') ?? 0) > 0, 'queue full: drops counted')
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
  const load = new SteadyLoad(daemon.address, 50, 1, 'retry')
  await sleep(1000)
  const r = await load.stop()
  setTimeout(() => receiver.setResponse({ status: 503, retryAfterSeconds: 1 }), 500)
  setTimeout(() => receiver.setResponse(), 1800)
  const expected = r.requests * 9
  t.ok(await eventually(() => receiver.spans.length >= expected, 15_000), `all ${expected} spans delivered after the retries`)
  t.ok(receiver.rejectedRequests > 0, `the collector refused ${receiver.rejectedRequests} requests first`)
  t.equal(daemon.exportStats.spansDropped.get('export_failed') ?? 0, 0, 'none lost')
  t.equal(new Set(receiver.spans.map((s) => s.spanId)).size, receiver.spans.length, 'and none twice')
})
