// The pieces under the endpoint, without sockets: readiness checks and their
// threshold, counters fed from our totals (monotonic, exact deltas, fixed
// label sets), histograms rescaled to seconds, interval quantiles for the
// statistics line.

import t from 'tap'
import { AgentStats } from '../../src/agent/index.js'
import { ExportStats } from '../../src/export/stats.js'
import { readiness } from '../../src/metrics/readiness.js'
import { tracerRegistry } from '../../src/metrics/registry.js'
import type { MetricsSource } from '../../src/metrics/source.js'
import { HistogramWindow } from '../../src/metrics/window.js'
import { TracingStats } from '../../src/tracing/stats.js'
import { bump } from '../../src/util/counters.js'
import { ACK_LATENCY_US_BOUNDS, Histogram } from '../../src/util/histogram.js'
import { parseExposition, total, value } from './fixtures/scrape.js'

function source(over: Partial<MetricsSource> = {}) {
  const state = { listening: true, closing: false, size: 0 }
  const agent = { stats: new AgentStats(), get listening() { return state.listening } }
  const store = { stats: new TracingStats(), get size() { return state.size } }
  const exportStats = new ExportStats()
  exportStats.workersUp = 1
  const s: MetricsSource = {
    version: '0.0.0-test',
    agent,
    store,
    exportStats,
    queueCapacity: 100,
    exporting: true,
    readyExportFailureThresholdMs: 60_000,
    shuttingDown: () => state.closing,
    ...over,
  }
  return { s, state }
}

t.test('readiness: each check, and the failure threshold', async (t) => {
  const { s, state } = source()
  const now = 1_000_000
  t.same(readiness(s, now), { ready: true, failed: [] })
  s.exportStats.failingSince = now - 60_000
  t.equal(readiness(s, now).ready, true, 'failing exactly as long as the threshold: still ready')
  s.exportStats.failingSince = now - 60_001
  t.same(readiness(s, now).failed, ['export failing for 60s (threshold 60s)'])
  s.exportStats.failingSince = 0
  s.exportStats.workersUp = 0
  t.same(readiness(s, now).failed, ['no export worker up'])
  state.listening = false
  state.closing = true
  t.same(readiness(s, now).failed, ['shutting down', 'SPOP listener not listening', 'no export worker up'], 'every failed check listed')
  const none = source({ exporting: false }).s
  none.exportStats.workersUp = 0
  none.exportStats.failingSince = 1
  t.equal(readiness(none, now).ready, true, 'exporter none: no worker, no collector to wait for')
})

t.test('counters: our totals as monotonic Prometheus counters, fixed labels', async (t) => {
  const { s, state } = source()
  const reg = tracerRegistry(s)
  const scrape = async () => parseExposition(await reg.metrics())
  const a = s.agent.stats
  let x = await scrape()
  t.equal(value(x, 'spoa_tracer_notify_received_total'), 0)
  t.equal(x.get('spoa_tracer_protocol_errors_total')?.samples.length, 0, 'no series before the first error')
  a.notifyReceived = 5
  a.connectionsOpen = 2
  state.size = 7
  bump(a.protocolErrors, 'ERR_SPOP_INVALID', 2)
  bump(a.disconnectsReceived, 0)
  bump(a.disconnectsReceived, 77_777) // a status code of HAProxy's choosing
  bump(a.disconnectsReceived, -3)
  bump(s.store.stats.spansDropped, 'span_cap', 3)
  bump(s.exportStats.spansDropped, 'queue_full', 4)
  bump(s.store.stats.messagesRejected, 'weird value with spaces"{}')
  x = await scrape()
  t.equal(value(x, 'spoa_tracer_notify_received_total'), 5)
  t.equal(value(x, 'spoa_tracer_connections_open'), 2)
  t.equal(value(x, 'spoa_tracer_trees_open'), 7)
  t.equal(value(x, 'spoa_tracer_protocol_errors_total', { code: 'ERR_SPOP_INVALID' }), 2)
  t.equal(value(x, 'spoa_tracer_haproxy_disconnects_total', { status: '0' }), 1)
  t.equal(value(x, 'spoa_tracer_haproxy_disconnects_total', { status: 'other' }), 2, 'undefined status codes: one "other" series')
  t.equal(value(x, 'spoa_tracer_spans_dropped_total', { reason: 'span_cap' }), 3)
  t.equal(value(x, 'spoa_tracer_spans_dropped_total', { reason: 'queue_full' }), 4)
  t.equal(value(x, 'spoa_tracer_messages_rejected_total', { reason: 'other' }), 1, 'a label value outside the charset')
  a.notifyReceived = 12
  bump(a.protocolErrors, 'ERR_SPOP_INVALID')
  x = await scrape()
  t.equal(value(x, 'spoa_tracer_notify_received_total'), 12, 'fed by the increase, not added twice')
  t.equal(value(x, 'spoa_tracer_protocol_errors_total', { code: 'ERR_SPOP_INVALID' }), 3)
  x = await scrape()
  t.equal(value(x, 'spoa_tracer_notify_received_total'), 12, 'a scrape without news changes nothing')
  for (let i = 0; i < 100; i++) bump(s.store.stats.argumentErrors, `reason_${i}`)
  x = await scrape()
  t.ok(x.get('spoa_tracer_argument_errors_total')!.samples.length <= 41, 'series per metric are capped')
  t.equal(total(x, 'spoa_tracer_argument_errors_total'), 100, 'nothing lost: the rest counts as "other"')
})

t.test('histograms: our buckets, rendered in seconds', async (t) => {
  const { s } = source()
  const reg = tracerRegistry(s)
  const h = s.agent.stats.ackLatencyUs
  for (const us of [3, 7, 7, 40, 900, 3_000_000]) h.observe(us)
  s.exportStats.exportMs.observe(12)
  const x = parseExposition(await reg.metrics())
  const b = (le: string) => value(x, 'spoa_tracer_ack_latency_seconds_bucket', { le })
  t.same([b('0.000005'), b('0.00001'), b('0.00005'), b('0.001'), b('2.5'), b('+Inf')], [1, 3, 4, 5, 5, 6])
  t.equal(value(x, 'spoa_tracer_ack_latency_seconds_count'), 6)
  t.ok(Math.abs(value(x, 'spoa_tracer_ack_latency_seconds_sum') - 3_000_957 / 1e6) < 1e-9, 'sum in seconds')
  t.equal(value(x, 'spoa_tracer_export_duration_seconds_bucket', { le: '0.025' }), 1, 'ms bounds rendered in seconds')
  t.equal(value(x, 'spoa_tracer_export_duration_seconds_bucket', { le: '0.01' }), 0)
  t.equal(value(x, 'spoa_tracer_export_duration_seconds_sum'), 0.012)
})

t.test('interval quantiles for the statistics line', async (t) => {
  const h = new Histogram(ACK_LATENCY_US_BOUNDS)
  h.observe(1000)
  const w = new HistogramWindow(h)
  t.same(w.next([0.5, 0.99]), [0, 0], 'nothing since the window opened')
  for (let i = 0; i < 98; i++) h.observe(8)
  h.observe(40)
  h.observe(20_000)
  t.same(w.next([0.5, 0.99, 1]), [10, 50, 25_000], 'bucket upper bounds over the interval only')
  h.observe(9_999_999)
  t.same(w.next([0.5]), [2_500_000], 'the overflow bucket reports the largest bound')
})
