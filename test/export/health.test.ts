// Export health, said when it changes. Unit: ExportHealth on a manual clock.
// Process: the agent (bin/spoa-tracer) exporting to a real OTLP receiver that
// is down, then up, then down again: the first failed attempt is logged and
// counted at once, /readyz counts its threshold from it, the recovery is
// logged once with the outage and its drops, and a stop while the collector
// is down says what it drops and exits by --shutdown-timeout.

import t, { type Test } from 'tap'
import { nineSpanFlow } from '../../harness/flows/nine-span.js'
import { ExportHealth } from '../../src/export/health.js'
import { ExportStats } from '../../src/export/stats.js'
import { type Proc, run } from '../helpers/agent-process.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { freePort, waitForPort } from '../../harness/ports.js'
import { http } from '../helpers/http.js'
import { captureLogger } from '../helpers/logger.js'
import { type OtlpReceiver, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually, within } from '../../harness/wait.js'

t.test('ExportHealth: the first failure at once, then at most one line per interval, the recovery once', async (t) => {
  let now = 1_000_000
  const stats = new ExportStats()
  const cap = captureLogger('info')
  const h = new ExportHealth(stats, cap.logger, 'http://***@c:4318/v1/traces', () => now, 10_000)
  const retry = () => ({ kind: 'retry', inMs: 1000 }) as const
  h.failed('connect ECONNREFUSED', 9, retry)
  t.equal(stats.failingSince, now, 'failing from the first failed attempt')
  t.same(cap.lines.map((l) => [l.msg, l.error, l.spans, l.retryInS, l.target]), [
    ['export failed; the batch is kept and sent again', 'connect ECONNREFUSED', 9, 1, 'http://***@c:4318/v1/traces'],
  ])
  for (let i = 0; i < 5; i++) {
    now += 1000
    h.failed('connect ECONNREFUSED', 9, retry)
  }
  t.equal(cap.lines.length, 1, 'repeats within the interval: not logged')
  now += 6000
  h.failed('HTTP 503 Service Unavailable', 9, () => {
    stats.spansDropped.set('export_failed', 9)
    return { kind: 'dropped', why: 'failed 10 times' }
  })
  t.match(cap.lines[1], { msg: 'export still failing; spans dropped', suppressed: 5, failingForS: 11, dropped: 'failed 10 times', error: 'HTTP 503 Service Unavailable' })
  t.equal(h.error, 'HTTP 503 Service Unavailable')
  now += 1500
  stats.spansDropped.set('queue_full', 18)
  h.succeeded()
  t.match(cap.lines[2], { level: 30, msg: 'export recovered after 12.5 s; 27 span(s) dropped meanwhile', outageS: 12.5, failedAttempts: 7, droppedSpans: 27 })
  t.equal(stats.failingSince, 0)
  h.succeeded()
  t.equal(cap.lines.length, 3, 'a recovery is said once')
  now += 1000
  h.failed('connect ECONNREFUSED', 9, retry)
  t.equal(cap.lines.length, 4, 'a new outage: its first failure is logged at once, whatever the interval')
  t.equal(cap.lines[3]!.msg, 'export failed; the batch is kept and sent again')
})

/** SIGTERM: a normal stop, and the process gone by the shutdown timeout, measured from the signal. */
async function stopsInTime(t: Test, p: Proc, shutdownMs: number): Promise<void> {
  const stopAt = Date.now()
  p.child.kill('SIGTERM')
  const exit = await within(p.exit, shutdownMs + 5000, 'stop')
  const took = Date.now() - stopAt
  t.same(exit, { code: 0, signal: null })
  t.ok(took <= shutdownMs, `exited ${took} ms after SIGTERM (--shutdown-timeout ${shutdownMs} ms)`)
}

/** A collector that can go away and come back on the same port. */
class Collector {
  receiver: OtlpReceiver | null = null
  readonly spans: string[] = []
  constructor(readonly port: number) {}
  async up(): Promise<void> {
    this.receiver = await startOtlpReceiver({ port: this.port })
  }
  async down(): Promise<void> {
    if (this.receiver) this.spans.push(...this.receiver.spans.map((s) => s.spanId))
    await this.receiver?.close()
    this.receiver = null
  }
  received(): number {
    return this.spans.length + (this.receiver?.spans.length ?? 0)
  }
}

t.test('collector down, up, down: logged, counted and ready as it happens; a stop says what it drops and ends in time', async (t) => {
  const collector = new Collector(await freePort())
  t.teardown(() => collector.down())
  const port = await freePort()
  const metrics = { host: '127.0.0.1', port: await freePort() }
  const THRESHOLD_MS = 3000
  const SHUTDOWN_MS = 3000
  const p = run(t, [
    '-p', String(port), '--endpoint', `http://127.0.0.1:${collector.port}`, '--metrics-address', String(metrics.port),
    '--batch-delay', '100ms', '-i', '300ms', '--ready-export-failure-threshold', `${THRESHOLD_MS}ms`, '--shutdown-timeout', `${SHUTDOWN_MS}ms`,
    // Room for two requests (18 spans) held for retry; a third is dropped: the outage has a cost to report.
    '--queue-size', '20', '--batch-size', '10',
  ])
  await p.line((l) => l.msg === 'spoa-tracer started', 20_000)
  await waitForPort(port, 5000)
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  t.teardown(() => h.destroy())
  await h.hello()
  let sid = 1
  let req = 0
  const request = async (): Promise<number> => {
    for (const messages of nineSpanFlow({ uniqueId: `health-${req++}` })) {
      h.notify(sid++, 1, messages)
      t.equal((await h.next()).type, 'ack')
    }
    return Date.now()
  }
  const failures = (): Array<Record<string, unknown>> => p.lines().filter((l) => /^export (failed|still failing)/.test(String(l.msg)))
  const counter = async (): Promise<number> => {
    const m = /^spoa_tracer_export_batches_failed_total (\d+)$/m.exec((await http(metrics, '/metrics')).body)
    return Number(m?.[1] ?? NaN)
  }

  // Down from the start: the first attempt fails and says so at once.
  const sent = await request()
  const first = await p.line((l) => l.msg === 'export failed; the batch is kept and sent again', 10_000)
  const firstAt = first.time as number
  t.ok(firstAt - sent < 1500, `the first failure logged ${firstAt - sent} ms after the request (batch delay 100 ms)`)
  t.match(first, { level: 40, error: /ECONNREFUSED/, spans: 9, target: `http://127.0.0.1:${collector.port}/v1/traces` })
  t.ok((await counter()) >= 1, 'counted in /metrics at once')
  const stat = await p.line((l) => l.msg === 'statistics' && (l.exportFailures as number) >= 1 && (l.time as number) >= firstAt, 5000)
  t.ok((stat.exportFailures as number) >= 1, 'and in the statistics line')
  // /readyz: ready until the threshold has passed since that first failure, then not.
  let ready = await http(metrics, '/readyz')
  if (Date.now() - firstAt < THRESHOLD_MS - 500) t.equal(ready.status, 200, 'within the threshold: still ready')
  const until = Date.now() + THRESHOLD_MS + 5000
  while ((ready = await http(metrics, '/readyz')).status === 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
  const notReadyAt = Date.now()
  t.equal(ready.status, 503)
  t.match(ready.body, /^not ready: export failing for [\d.]+s \(threshold 3s\)\n$/)
  t.ok(notReadyAt - firstAt >= THRESHOLD_MS - 100, `503 after ${notReadyAt - firstAt} ms: the threshold counts from the first failure`)
  t.ok(notReadyAt - firstAt < THRESHOLD_MS + 2500, 'and not from some later point')
  // Two more requests: one still fits in the queue, one does not.
  await request()
  await request()
  t.ok(await eventually(() => p.lines().some((l) => l.msg === 'export queue full: spans dropped (is the collector slow or down?)'), 5000), 'the drop is said')
  const outageLines = failures().length
  t.ok(outageLines <= 1 + Math.ceil((Date.now() - firstAt) / 10_000), `failures rate-limited: ${outageLines} line(s)`)

  // Up: the held batches go through on their next retry; the outage ends with one line.
  await collector.up()
  const upAt = Date.now()
  const recovered = await p.line((l) => l.msg !== undefined && String(l.msg).startsWith('export recovered after'), 30_000)
  t.match(recovered, { level: 30, droppedSpans: 9, lastError: /ECONNREFUSED/ })
  t.match(String(recovered.msg), /^export recovered after [\d.]+ s; 9 span\(s\) dropped meanwhile$/)
  const outageS = recovered.outageS as number
  t.ok(outageS * 1000 >= upAt - firstAt - 200 && outageS * 1000 <= (recovered.time as number) - firstAt + 200, `the outage: ${outageS} s`)
  t.ok(await eventually(() => collector.received() >= 18, 30_000), 'the held batches are delivered by their retries')
  await request()
  t.ok(await eventually(() => collector.received() >= 27, 10_000), 'and new ones at once')
  t.equal((await http(metrics, '/readyz')).status, 200, 'ready again')
  t.equal(p.lines().filter((l) => String(l.msg).startsWith('export recovered')).length, 1, 'the recovery said once')

  // Down again: a new outage is said at once, even within the limiter's interval.
  await collector.down()
  const again = await request()
  const second = await p.line((l) => l.msg === 'export failed; the batch is kept and sent again' && (l.time as number) > (recovered.time as number), 10_000)
  t.ok((second.time as number) - again < 1500, 'the next outage: its first failure logged at once too')

  // Stop while the collector is down: what is dropped is said as dropped, and the process is gone in time.
  await stopsInTime(t, p, SHUTDOWN_MS)
  const lines = p.lines()
  const after = lines.slice(lines.findIndex((l) => l.msg === 'stopping'))
  const dropped = after.find((l) => /could not be exported in time and were dropped$/.test(String(l.msg)))
  t.match(dropped, { level: 40, spans: 9, dropped: { shutdown: 9 }, exportError: /ECONNREFUSED/ }, 'the shutdown drop, with its count and why')
  t.notOk(after.some((l) => /kept|will retry/.test(String(l.msg))), 'nothing said to be retried after the stop began')
  t.match(after.at(-1), { msg: 'stopped', dropped: { shutdown: 9, queue_full: 9 } })
})

t.test('a collector that never answers: the stop still ends by --shutdown-timeout, saying what it dropped', async (t) => {
  const receiver = await startOtlpReceiver({ response: { delayMs: 120_000 } })
  t.teardown(() => receiver.close())
  const port = await freePort()
  const metrics = { host: '127.0.0.1', port: await freePort() }
  const SHUTDOWN_MS = 3000
  const p = run(t, [
    '-p', String(port), '--endpoint', receiver.url, '-n', '2', '--batch-delay', '50ms', '-i', '0',
    '--metrics-address', String(metrics.port), '--shutdown-timeout', `${SHUTDOWN_MS}ms`,
  ])
  await p.line((l) => l.msg === 'spoa-tracer started', 20_000)
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  t.teardown(() => h.destroy())
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'hung' })) h.notify(sid++, 1, messages)
  const inFlight = async (): Promise<number> => Number(/^spoa_tracer_export_inflight_spans (\d+)$/m.exec((await http(metrics, '/metrics')).body)?.[1])
  let n = 0
  const until = Date.now() + 10_000
  while ((n = await inFlight()) < 9 && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
  t.equal(n, 9, 'the batch is in flight, held by the collector')
  await stopsInTime(t, p, SHUTDOWN_MS)
  t.match(p.lines().find((l) => /could not be exported in time and were dropped$/.test(String(l.msg))), { spans: 9, dropped: { shutdown: 9 } })
  t.equal(receiver.spans.length, 0)
})
