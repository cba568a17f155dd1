// The metrics and health endpoint of a real daemon: real SPOP traffic (the
// 9-span flow, protocol errors, a HAPROXY-DISCONNECT), a real OTLP receiver,
// then /metrics parsed and checked value by value against what was sent;
// /healthz, /readyz (ready, export failing, shutting down), 404, 405, HEAD.

import { mkdtempSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { nineSpanFlow } from '../../harness/flows/nine-span.js'
import type { ListenAddress } from '../../src/agent/index.js'
import { type Config, DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { DEFAULT_EXPORT_CONFIG, type ExportConfig } from '../../src/export/config.js'
import { type Daemon, startDaemon } from '../../src/daemon/main.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { silentLogger } from '../helpers/logger.js'
import { type OtlpReceiver, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'
import { VERSION } from '../../src/daemon/version.js'
import { type Family, http, parseExposition, scrape, total, value } from './fixtures/scrape.js'

const LOOPBACK: ListenAddress = { host: '127.0.0.1', port: 0 }

async function daemonWith(t: Test, receiver: OtlpReceiver | null, over: Partial<Config> = {}, exp: Partial<ExportConfig> = {}): Promise<Daemon> {
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: LOOPBACK,
      metricsAddress: LOOPBACK,
      ...over,
      export: {
        ...DEFAULT_EXPORT_CONFIG,
        ...(receiver ? { endpoint: receiver.tracesUrl } : { exporter: 'none' }),
        scheduledDelayMs: 20,
        ...exp,
      },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  return daemon
}

const metricsAt = (d: Daemon): ListenAddress => {
  if (d.metricsAddress === null) throw new Error('metrics endpoint off')
  return d.metricsAddress
}

/** One HAProxy connection past its HELLO, sending whole 9-span requests. */
async function haproxy(d: Daemon) {
  const h = await FakeHaproxy.connect(d.address)
  const hello = await h.hello()
  if (hello.type !== 'agent-hello') throw new Error(`expected AGENT-HELLO, got ${hello.type}`)
  let sid = 1
  return {
    h,
    async request(uniqueId: string): Promise<void> {
      for (const messages of nineSpanFlow({ uniqueId })) {
        h.notify(sid++, 1, messages)
        const f = await h.next()
        if (f.type !== 'ack') throw new Error(`expected ACK, got ${f.type}`)
      }
    },
  }
}

/** Every counter and histogram series of ours, keyed by name and labels. */
function monotonicSeries(m: Map<string, Family>): Map<string, number> {
  const out = new Map<string, number>()
  for (const f of m.values()) {
    if (!f.name.startsWith('spoa_tracer_') || (f.type !== 'counter' && f.type !== 'histogram')) continue
    for (const s of f.samples) out.set(`${s.name}${JSON.stringify(s.labels)}`, s.value)
  }
  return out
}

t.test('after real traffic, /metrics says what happened', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const d = await daemonWith(t, receiver)
  const m = metricsAt(d)
  t.same([(await http(m, '/healthz')).status, (await http(m, '/healthz')).body], [200, 'ok\n'], 'alive')
  t.same(await http(m, '/readyz').then((r) => [r.status, r.body]), [200, 'ready\n'], 'ready')

  const a = await haproxy(d)
  for (let i = 0; i < 3; i++) await a.request(`req-${i}`)
  await receiver.waitForSpans(27, 5000)
  t.ok(await eventually(() => d.exportStats.spansExported === 27, 5000), 'exported')

  // Protocol errors on two more connections: a frame over the size limit, an invalid HELLO.
  const big = await FakeHaproxy.connect(d.address)
  big.send(Buffer.from([0x7f, 0xff, 0xff, 0xff]))
  t.equal((await big.next()).type, 'agent-disconnect')
  await big.waitClosed()
  const cut = await FakeHaproxy.connect(d.address)
  cut.send(Buffer.from([0, 0, 0, 3, 1, 0, 0]))
  t.equal((await cut.next()).type, 'agent-disconnect')
  await cut.waitClosed()
  // And a routine goodbye from HAProxy.
  const bye = await haproxy(d)
  bye.h.disconnect(0, 'normal')
  t.equal((await bye.h.next()).type, 'agent-disconnect')
  bye.h.destroy()
  t.ok(await eventually(() => d.agent.stats.connectionsOpen === 1, 2000), 'one connection left open')

  const r = await http(m, '/metrics')
  t.equal(r.status, 200)
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/, 'Prometheus text format 0.0.4')
  const x = parseExposition(r.body)

  t.test('types and names', async (t) => {
    const ours = [...x.values()].filter((f) => f.name.startsWith('spoa_tracer_'))
    t.ok(ours.length >= 40, `${ours.length} spoa_tracer_ families`)
    for (const f of ours) {
      t.ok(f.help.length > 0, `${f.name} has HELP`)
      t.match(f.name, /^spoa_tracer_[a-z0-9_]+$/, 'snake_case')
      if (f.name.endsWith('_total')) t.equal(f.type, 'counter', `${f.name} is a counter`)
      else if (f.type === 'counter') t.fail(`counter ${f.name} does not end in _total`)
      if (f.type === 'histogram') t.match(f.name, /_seconds$/, `${f.name} in seconds`)
    }
    const types: Record<string, string> = {
      spoa_tracer_connections_open: 'gauge',
      spoa_tracer_ack_latency_seconds: 'histogram',
      spoa_tracer_export_duration_seconds: 'histogram',
      spoa_tracer_trees_open: 'gauge',
      spoa_tracer_spans_open: 'gauge',
      spoa_tracer_export_queue_depth: 'gauge',
      spoa_tracer_export_queue_capacity: 'gauge',
      spoa_tracer_export_workers_up: 'gauge',
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_gc_duration_seconds: 'histogram',
    }
    for (const [name, type] of Object.entries(types)) t.equal(x.get(name)?.type, type, `# TYPE ${name} ${type}`)
    t.ok(value(x, 'process_resident_memory_bytes') > 1e6, 'RSS from the library')
    t.equal(value(x, 'spoa_tracer_info', { version: VERSION }), 1, 'the version as a label')
  })

  t.test('SPOP', async (t) => {
    t.equal(value(x, 'spoa_tracer_connections_total'), 4, 'connections accepted')
    t.equal(value(x, 'spoa_tracer_connections_open'), 1)
    t.equal(value(x, 'spoa_tracer_connections_rejected_total'), 0)
    t.equal(value(x, 'spoa_tracer_handshakes_total'), 2)
    t.equal(value(x, 'spoa_tracer_notify_received_total'), 24, '3 requests x 8 NOTIFY')
    t.equal(value(x, 'spoa_tracer_acks_sent_total'), 24)
    t.equal(value(x, 'spoa_tracer_messages_received_total'), 30, '3 requests x 10 messages')
    t.equal(value(x, 'spoa_tracer_frames_received_total', { type: 'notify' }), 24)
    t.equal(value(x, 'spoa_tracer_frames_received_total', { type: 'haproxy-hello' }), 2)
    t.equal(value(x, 'spoa_tracer_frames_received_total', { type: 'haproxy-disconnect' }), 1)
    t.equal(value(x, 'spoa_tracer_frames_sent_total', { type: 'ack' }), 24)
    t.equal(value(x, 'spoa_tracer_frames_sent_total', { type: 'agent-hello' }), 2)
    t.equal(value(x, 'spoa_tracer_frames_sent_total', { type: 'agent-disconnect' }), 3)
    t.equal(value(x, 'spoa_tracer_protocol_errors_total', { code: 'ERR_SPOP_TOO_BIG' }), 1)
    t.equal(value(x, 'spoa_tracer_protocol_errors_total', { code: 'ERR_SPOP_INVALID' }), 1)
    t.equal(total(x, 'spoa_tracer_protocol_errors_total'), 2)
    t.equal(value(x, 'spoa_tracer_agent_disconnects_total', { status: '3' }), 1, 'too big')
    t.equal(value(x, 'spoa_tracer_agent_disconnects_total', { status: '4' }), 1, 'invalid')
    t.equal(value(x, 'spoa_tracer_agent_disconnects_total', { status: '0' }), 1, 'normal')
    t.equal(value(x, 'spoa_tracer_haproxy_disconnects_total', { status: '0' }), 1)
    t.equal(value(x, 'spoa_tracer_handler_errors_total'), 0)
    t.equal(value(x, 'spoa_tracer_notify_inflight'), 0)
  })

  t.test('NOTIFY -> ACK latency histogram', async (t) => {
    const buckets = x.get('spoa_tracer_ack_latency_seconds')!.samples.filter((s) => s.name.endsWith('_bucket'))
    const les = buckets.map((s) => Number(s.labels.le === '+Inf' ? Infinity : s.labels.le))
    t.equal(les.length, 19, '18 bounds and +Inf')
    t.same(les.slice(0, 3), [0.000005, 0.00001, 0.000025], 'microsecond bounds rendered in seconds')
    t.equal(les[les.length - 1], Infinity)
    for (let i = 1; i < buckets.length; i++) {
      t.ok(les[i]! > les[i - 1]!, 'bounds ascend')
      t.ok(buckets[i]!.value >= buckets[i - 1]!.value, `cumulative counts never decrease (le=${buckets[i]!.labels.le})`)
    }
    t.equal(value(x, 'spoa_tracer_ack_latency_seconds_count'), 24, 'one observation per ACK')
    t.equal(buckets[buckets.length - 1]!.value, 24, '+Inf = count')
    const sum = value(x, 'spoa_tracer_ack_latency_seconds_sum')
    t.ok(sum > 0 && sum < 24 * 0.5, `sum in seconds (${sum})`)
  })

  t.test('tracing', async (t) => {
    t.equal(value(x, 'spoa_tracer_trees_started_total'), 3)
    t.equal(value(x, 'spoa_tracer_trees_completed_total'), 3)
    t.equal(value(x, 'spoa_tracer_trees_reaped_total'), 0)
    t.equal(value(x, 'spoa_tracer_trees_ended_at_shutdown_total'), 0)
    t.equal(value(x, 'spoa_tracer_trees_open'), 0)
    t.equal(value(x, 'spoa_tracer_spans_open'), 0)
    t.equal(value(x, 'spoa_tracer_spans_started_total'), 27)
    t.equal(value(x, 'spoa_tracer_spans_finished_total'), 27)
    t.equal(total(x, 'spoa_tracer_messages_rejected_total'), 0)
    for (const reason of ['span_cap', 'queue_full', 'export_failed', 'worker_crash', 'shutdown']) {
      t.equal(value(x, 'spoa_tracer_spans_dropped_total', { reason }), 0, `dropped ${reason}: present, 0`)
    }
  })

  t.test('export', async (t) => {
    const e = d.exportStats
    t.equal(value(x, 'spoa_tracer_spans_queued_total'), 27)
    t.equal(value(x, 'spoa_tracer_spans_exported_total'), 27, '9 x 3 requests')
    t.equal(value(x, 'spoa_tracer_export_batches_exported_total'), e.batchesExported)
    t.ok(e.batchesExported >= 1)
    t.equal(value(x, 'spoa_tracer_export_batches_failed_total'), 0)
    t.equal(value(x, 'spoa_tracer_export_duration_seconds_count'), e.batchesExported, 'one observation per export request')
    t.equal(value(x, 'spoa_tracer_export_failing_seconds'), 0)
    t.equal(value(x, 'spoa_tracer_export_queue_depth'), 0)
    t.equal(value(x, 'spoa_tracer_export_queue_capacity'), DEFAULT_EXPORT_CONFIG.maxQueueSize)
    t.equal(value(x, 'spoa_tracer_export_inflight_spans'), 0)
    t.equal(value(x, 'spoa_tracer_export_workers_up'), 1)
    t.equal(value(x, 'spoa_tracer_export_worker_restarts_total'), 0)
    t.equal(value(x, 'spoa_tracer_ready'), 1)
  })

  t.test('counters only go up, by what happened', async (t) => {
    await a.request('req-3')
    t.ok(await eventually(() => d.exportStats.spansExported === 36, 5000))
    const y = await scrape(m)
    t.equal(value(y, 'spoa_tracer_notify_received_total'), 32)
    t.equal(value(y, 'spoa_tracer_spans_exported_total'), 36)
    t.equal(value(y, 'spoa_tracer_ack_latency_seconds_count'), 32)
    const before = monotonicSeries(x)
    const after = monotonicSeries(y)
    for (const [k, v] of before) t.ok((after.get(k) ?? -1) >= v, `${k} did not go down`)
  })

  t.test('HTTP surface', async (t) => {
    const head = await http(m, '/metrics', { method: 'HEAD' })
    t.same([head.status, head.body], [200, ''], 'HEAD: headers only')
    t.equal((await http(m, '/metrics?name[]=x')).status, 200, 'a query string is ignored')
    const post = await http(m, '/metrics', { method: 'POST', body: 'x'.repeat(1000) })
    t.same([post.status, post.headers.allow], [405, 'GET, HEAD'])
    t.equal(post.headers.connection, 'close', 'a request body is not read: the connection closes')
    const withBody = await http(m, '/healthz', { body: 'hello', headers: { 'content-length': '5' } })
    t.same([withBody.status, withBody.headers.connection], [200, 'close'])
    for (const p of ['/', '/metric', '/metrics/x', '/healthz/', '/favicon.ico']) t.equal((await http(m, p)).status, 404, `${p}: 404`)
    t.equal((await http(m, '/healthz')).headers['cache-control'], 'no-store')
  })

  t.test('shutting down: /readyz 503 at once, then the endpoint goes away', async (t) => {
    const closing = d.close() // waits for the open SPOP connection to go
    const r = await http(m, '/readyz')
    t.equal(r.status, 503)
    t.match(r.body, /^not ready: .*shutting down/)
    t.equal((await http(m, '/healthz')).status, 200, 'still alive while stopping')
    a.h.destroy()
    await closing
    await t.rejects(http(m, '/healthz', { timeoutMs: 1000 }), /ECONNREFUSED/, 'closed with the daemon')
  })
})

t.test('dropped spans by reason: span cap (tracing) and queue full (export)', async (t) => {
  const receiver = await startOtlpReceiver({ response: { delayMs: 1500 } })
  t.teardown(() => receiver.close())
  const d = await daemonWith(
    t,
    receiver,
    { tree: { ...DEFAULT_CONFIG.tree, maxSpansPerTree: 5 } },
    { maxQueueSize: 5, maxBatchSize: 5, maxConcurrentExports: 1 },
  )
  const a = await haproxy(d)
  for (let i = 0; i < 4; i++) await a.request(`drop-${i}`)
  // A message without id= creates nothing, and says why.
  a.h.notify(999, 1, [{ name: 'opentracing:client_session_start', args: [] }])
  t.equal((await a.h.next()).type, 'ack')
  d.tracing.drain() // answered first, applied in batches: apply it before reading the counters
  const x = await scrape(metricsAt(d))
  const cap = value(x, 'spoa_tracer_spans_dropped_total', { reason: 'span_cap' })
  const full = value(x, 'spoa_tracer_spans_dropped_total', { reason: 'queue_full' })
  t.ok(cap >= 4, `spans over the cap of 5 (${cap})`)
  t.equal(cap, d.store!.stats.spansDropped.get('span_cap'), 'tracing side')
  t.equal(full, d.exportStats.spansDropped.get('queue_full'), 'export side')
  t.ok(full >= 10 && full % 5 === 0, `whole trees dropped while the collector is slow (${full})`)
  t.equal(value(x, 'spoa_tracer_export_queue_capacity'), 5)
  t.equal(value(x, 'spoa_tracer_export_queue_depth') + value(x, 'spoa_tracer_export_inflight_spans'), 5, 'one tree held')
  t.equal(value(x, 'spoa_tracer_messages_rejected_total', { reason: 'missing_id' }), 1)
  const argErrors = d.store!.stats.argumentErrors
  t.ok(argErrors.size > 0, 'references to dropped spans are argument errors')
  for (const [reason, n] of argErrors) t.equal(value(x, 'spoa_tracer_argument_errors_total', { reason }), n, `argument errors: ${reason}`)
  receiver.setResponse()
})

t.test('/readyz: 503 while the collector has failed for longer than the threshold, 200 once it is back', async (t) => {
  const receiver = await startOtlpReceiver({ response: { status: 503 } })
  t.teardown(() => receiver.close())
  const d = await daemonWith(t, receiver, { readyExportFailureThresholdMs: 200 }, { timeoutMs: 300 })
  const m = metricsAt(d)
  const a = await haproxy(d)
  await a.request('failing-1')
  t.ok(await eventually(() => d.exportStats.batchesFailed >= 1, 5000), 'the export failed')
  let r = await http(m, '/readyz')
  const deadline = Date.now() + 3000
  while (r.status === 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    r = await http(m, '/readyz')
  }
  t.equal(r.status, 503)
  t.match(r.body, /^not ready: export failing for [\d.]+s \(threshold 0\.2s\)\n$/)
  const x = await scrape(m)
  t.equal(value(x, 'spoa_tracer_ready'), 0)
  t.equal(value(x, 'spoa_tracer_export_batches_failed_total'), d.exportStats.batchesFailed)
  t.equal(value(x, 'spoa_tracer_spans_dropped_total', { reason: 'export_failed' }), 0, 'a 503 is retryable: nothing dropped')
  t.ok(value(x, 'spoa_tracer_export_failing_seconds') > 0.2)
  t.equal((await http(m, '/healthz')).status, 200, 'still alive')

  receiver.setResponse()
  await a.request('ok-1')
  t.ok(await eventually(() => d.exportStats.spansExported === 18, 10_000), 'the collector is back: the retried request and the new one')
  t.same(await http(m, '/readyz').then((x) => [x.status, x.body]), [200, 'ready\n'])
  const y = await scrape(m)
  t.same([value(y, 'spoa_tracer_ready'), value(y, 'spoa_tracer_export_failing_seconds')], [1, 0])
  a.h.destroy()
})

t.test('exporter none: ready without workers', async (t) => {
  const d = await daemonWith(t, null)
  t.equal(d.pool, null)
  t.equal((await http(metricsAt(d), '/readyz')).status, 200)
  t.equal(value(await scrape(metricsAt(d)), 'spoa_tracer_export_workers_up'), 0)
})

t.test('off by default', async (t) => {
  const d = await daemonWith(t, null, { metricsAddress: DEFAULT_CONFIG.metricsAddress })
  t.equal(DEFAULT_CONFIG.metricsAddress, null)
  t.equal(d.metricsAddress, null)
})

t.test('a unix socket', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'spoa-metrics-')), 'metrics.sock')
  const d = await daemonWith(t, null, { metricsAddress: { path } })
  t.same(d.metricsAddress, { path })
  t.same(await http({ path }, '/healthz').then((r) => [r.status, r.body]), [200, 'ok\n'])
  await d.close()
  t.notOk(existsSync(path), 'socket file removed at close')
})

t.test('an address in use stops the start with a clear error, and leaks nothing', async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  await t.rejects(
    startDaemon({ ...DEFAULT_CONFIG, listen: LOOPBACK, metricsAddress: { host: '127.0.0.1', port } }, silentLogger()),
    { name: 'StartError', message: `--metrics-address: 127.0.0.1:${port} is already in use` },
  )
})
