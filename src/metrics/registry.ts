// The spoa_tracer_* metrics of /metrics, in Prometheus text format 0.0.4, and
// the process metrics beside them. Nothing here runs on the NOTIFY -> ACK
// path: every metric is read at scrape time (prom-client collect() callbacks)
// from the plain counters, maps and fixed-bucket histograms each layer
// already keeps (AgentStats, TracingStats, ExportStats), so a scrape costs a
// few hundred reads and the hot path pays nothing for being observable.
//
// Why prom-client rather than the OpenTelemetry Prometheus exporter:
// - process_* and nodejs_* metrics (CPU, RSS, heap, event-loop lag, GC) come
//   with it (collectDefaultMetrics); the OTel JS metrics SDK has none built
//   in and needs more packages (host-metrics, runtime instrumentation).
// - It is light (two small dependencies, one of which, @opentelemetry/api, we
//   already have) and stable (15.x), where @opentelemetry/exporter-prometheus
//   is a 0.x package that must move in lockstep with the sdk-metrics 2.x line
//   and our other OTel packages, and brings its own HTTP server.
// - Names stay exactly what we choose: the OTel exporter rewrites them (unit
//   and _total suffixes, target_info, otel_scope_* labels).
//
// Counters are fed the increase of our totals since the last scrape, so they
// are as monotonic as the totals are. Label values come from fixed sets
// (frame type names, status codes, error codes, reason strings written in
// our code); anything else is reported as "other".

import { collectDefaultMetrics, Counter, Gauge, Histogram as PromHistogram, Registry } from 'prom-client'
import { Status } from '../spop/index.js'
import type { Histogram } from '../util/histogram.js'
import { REJECT_REASONS as LOG_REJECT_REASONS } from '../intake/log/stats.js'
import { exportFailingMs, readiness } from './readiness.js'
import type { MetricsSource } from './source.js'

type Raw = string | number

/** Reasons the export and tracing sides drop spans for: present at 0 from the start. */
const DROP_REASONS = ['span_cap', 'queue_full', 'export_failed', 'worker_crash', 'shutdown']
const KNOWN_STATUS = new Set<string>(Object.values(Status).map(String))
const LABEL_VALUE = /^[A-Za-z0-9_.-]{1,64}$/
/** Series per labelled metric at most: a bug elsewhere must not explode a scrape. */
const MAX_SERIES = 40

/** A status code is a number a peer may choose: only the codes SPOE.txt defines get a series. */
const statusLabel = (raw: Raw): string => (KNOWN_STATUS.has(String(raw)) ? String(raw) : 'other')

function boundedLabels(): (raw: Raw) => string {
  const seen = new Set<string>()
  return (raw) => {
    const v = String(raw)
    if (!LABEL_VALUE.test(v)) return 'other'
    if (!seen.has(v)) {
      if (seen.size >= MAX_SERIES) return 'other'
      seen.add(v)
    }
    return v
  }
}

function* entries(...maps: ReadonlyMap<Raw, number>[]): Iterable<[Raw, number]> {
  if (maps.length === 1) {
    yield* maps[0]!
    return
  }
  const sum = new Map<Raw, number>()
  for (const m of maps) for (const [k, v] of m) sum.set(k, (sum.get(k) ?? 0) + v)
  yield* sum
}

function counter(reg: Registry, name: string, help: string, read: () => number): void {
  let last = 0
  new Counter({
    name,
    help,
    registers: [reg],
    collect() {
      const v = read()
      if (v > last) {
        this.inc(v - last)
        last = v
      }
    },
  })
}

function labelledCounter(
  reg: Registry,
  name: string,
  help: string,
  label: string,
  read: () => Iterable<[Raw, number]>,
  opts: { seed?: readonly string[]; normalize?: (raw: Raw) => string } = {},
): void {
  const normalize = opts.normalize ?? boundedLabels()
  const last = new Map<Raw, number>()
  const c = new Counter<string>({
    name,
    help,
    labelNames: [label],
    registers: [reg],
    collect() {
      for (const [raw, v] of read()) {
        const d = v - (last.get(raw) ?? 0)
        if (d <= 0) continue
        last.set(raw, v)
        this.inc({ [label]: normalize(raw) }, d)
      }
    },
  })
  for (const s of opts.seed ?? []) c.inc({ [label]: normalize(s) }, 0)
}

function gauge(reg: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [reg],
    collect() {
      this.set(read())
    },
  })
}

interface Sample {
  metricName: string
  labels: Record<string, string | number>
  sharedLabels: Record<string, string>
  value: number
}

/**
 * A Prometheus histogram whose buckets are those of one of our fixed-bucket
 * Histograms, rescaled to seconds at scrape time (observations stay in the
 * unit the hot path measures in). prom-client's own get() and its registry
 * both go through getForPromString(), which is the one method replaced.
 */
class ScaledHistogram extends PromHistogram<string> {
  private readonly source: Histogram
  private readonly perSecond: number
  private readonly fullName: string
  private readonly helpText: string

  constructor(reg: Registry, name: string, help: string, source: Histogram, unitsPerSecond: number) {
    super({ name, help, buckets: source.bounds.map((b) => b / unitsPerSecond), registers: [reg] })
    this.source = source
    this.perSecond = unitsPerSecond
    this.fullName = name
    this.helpText = help
  }

  async getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const h = this.source
    const cumulative = h.cumulative()
    const count = cumulative[cumulative.length - 1] ?? 0
    const sample = (suffix: string, value: number, labels: Sample['labels'] = {}): Sample => ({
      metricName: `${this.fullName}${suffix}`,
      labels,
      sharedLabels: {},
      value,
    })
    const values = h.bounds.map((b, i) => sample('_bucket', cumulative[i] ?? 0, { le: b / this.perSecond }))
    values.push(sample('_bucket', count, { le: '+Inf' }), sample('_sum', h.sum / this.perSecond), sample('_count', count))
    return { name: this.fullName, help: this.helpText, type: 'histogram', aggregator: 'sum', values }
  }
}

/** The spoa_tracer_* registry of one daemon. */
export function tracerRegistry(s: MetricsSource): Registry {
  const reg = new Registry()
  const a = s.agent.stats
  const t = s.store.stats
  const e = s.exportStats
  const P = 'spoa_tracer_'

  const info = new Gauge<string>({ name: `${P}info`, help: 'Always 1; the version of the agent as a label.', labelNames: ['version'], registers: [reg] })
  info.set({ version: s.version }, 1)
  gauge(reg, `${P}ready`, '1 when /readyz answers 200, else 0.', () => (readiness(s).ready ? 1 : 0))
  counter(reg, `${P}agent_restarts_total`, 'Times the supervisor restarted the agent process, this one excluded (0 when not supervised).', () => s.agentRestarts ?? 0)

  // SPOP
  gauge(reg, `${P}connections_open`, 'Open SPOP connections.', () => a.connectionsOpen)
  counter(reg, `${P}connections_total`, 'SPOP connections accepted.', () => a.connectionsTotal)
  counter(reg, `${P}connections_rejected_total`, 'SPOP connections refused (--max-connections, or shutting down).', () => a.connectionsRejected)
  counter(reg, `${P}handshakes_total`, 'HELLO handshakes completed (health checks excluded).', () => a.helloCompleted)
  counter(reg, `${P}healthchecks_total`, 'HAProxy health checks (option spop-check) answered.', () => a.healthchecks)
  labelledCounter(
    reg,
    `${P}frames_received_total`,
    'SPOP frames received, by frame type. type="notify" counts NOTIFY requests, a fragmented one once (its frames count under type="fragment").',
    'type',
    () => {
      const m = new Map<Raw, number>(a.framesIn)
      m.set('notify', (m.get('notify') ?? 0) + a.notifyReceived)
      return m
    },
    { seed: ['haproxy-hello', 'notify', 'haproxy-disconnect'] },
  )
  labelledCounter(
    reg,
    `${P}frames_sent_total`,
    'SPOP frames sent, by frame type.',
    'type',
    () => {
      const m = new Map<Raw, number>(a.framesOut)
      m.set('ack', (m.get('ack') ?? 0) + a.acksSent)
      return m
    },
    { seed: ['agent-hello', 'ack', 'agent-disconnect'] },
  )
  counter(reg, `${P}notify_received_total`, 'NOTIFY requests received (a fragmented one once).', () => a.notifyReceived)
  counter(reg, `${P}acks_sent_total`, 'ACK frames sent.', () => a.acksSent)
  gauge(reg, `${P}notify_inflight`, 'NOTIFY requests whose handler has not answered yet.', () => a.inflight)
  counter(reg, `${P}fragmented_notify_total`, 'NOTIFY requests that arrived in fragments.', () => a.fragmentedNotify)
  counter(reg, `${P}fragments_aborted_total`, 'Fragmented NOTIFY requests HAProxy aborted.', () => a.fragmentsAborted)
  counter(
    reg,
    `${P}fragments_refused_total`,
    'Fragmented NOTIFY requests the agent aborted (ACK with ABORT) for being larger than the reassembly bound.',
    () => a.fragmentsRefused,
  )
  counter(reg, `${P}acks_trimmed_total`, 'ACKs that would have exceeded max-frame-size, sent without their last actions.', () => a.acksTrimmed)
  counter(reg, `${P}ack_actions_dropped_total`, 'Actions (set-var) left out of ACKs that would have exceeded max-frame-size.', () => a.ackActionsDropped)
  labelledCounter(reg, `${P}agent_disconnects_total`, 'AGENT-DISCONNECT frames sent, by SPOP status code.', 'status', () => entries(a.disconnectsSent), {
    normalize: statusLabel,
  })
  labelledCounter(
    reg,
    `${P}haproxy_disconnects_total`,
    'HAPROXY-DISCONNECT frames received, by SPOP status code ("other" for codes SPOE.txt does not define).',
    'status',
    () => entries(a.disconnectsReceived),
    { normalize: statusLabel },
  )
  counter(reg, `${P}closed_without_disconnect_total`, 'Connections closed by HAProxy without a DISCONNECT (normal on HAProxy 3.x).', () => a.closedWithoutDisconnect)
  labelledCounter(reg, `${P}protocol_errors_total`, 'SPOP protocol errors, by error code; each closes its connection.', 'code', () => entries(a.protocolErrors))
  counter(reg, `${P}handler_errors_total`, 'NOTIFY handler failures (answered with an empty ACK).', () => a.handlerErrors)
  new ScaledHistogram(reg, `${P}ack_latency_seconds`, 'From the arrival of a NOTIFY to its ACK being queued.', a.ackLatencyUs, 1e6)

  // Tracing
  counter(reg, `${P}messages_received_total`, 'SPOE messages received in NOTIFY frames.', () => a.messagesReceived)
  labelledCounter(reg, `${P}messages_rejected_total`, 'Messages that created nothing, by reason.', 'reason', () => entries(t.messagesRejected))
  labelledCounter(reg, `${P}argument_errors_total`, 'Message arguments ignored, by reason.', 'reason', () => entries(t.argumentErrors))
  gauge(reg, `${P}trees_open`, 'Requests being traced (span trees not yet complete).', () => s.store.size)
  gauge(reg, `${P}spans_open`, 'Spans started and not yet ended.', () => t.openSpans)
  counter(reg, `${P}trees_started_total`, 'Span trees started.', () => t.treesStarted)
  counter(reg, `${P}trees_completed_total`, 'Span trees whose every span ended.', () => t.treesCompleted)
  counter(reg, `${P}trees_reaped_total`, 'Span trees ended by the idle reaper (--tree-ttl), open spans marked ERROR.', () => t.treesReaped)
  counter(reg, `${P}trees_ended_at_shutdown_total`, 'Span trees ended at shutdown, marked incomplete.', () => t.treesEndedAtShutdown)
  counter(reg, `${P}spans_started_total`, 'Spans started.', () => t.spansStarted)
  counter(reg, `${P}spans_finished_total`, 'Spans ended.', () => t.spansFinished)
  labelledCounter(
    reg,
    `${P}spans_dropped_total`,
    'Spans that never reached the backend, by reason (span_cap, queue_full, export_failed, worker_crash, shutdown).',
    'reason',
    () => entries(t.spansDropped, e.spansDropped),
    { seed: DROP_REASONS },
  )
  counter(reg, `${P}traces_sampled_out_total`, 'Traces the sampler (or HAProxy, in the compact profile) left out.', () => t.treesSampledOut)
  labelledCounter(reg, `${P}contexts_extracted_total`, 'Incoming trace contexts joined, by format.', 'format', () => entries(t.contextsExtracted))
  labelledCounter(
    reg,
    `${P}contexts_invalid_total`,
    'Incoming trace context headers that could not be used (a new trace started), by format:reason.',
    'reason',
    () => entries(t.contextsInvalid),
  )
  counter(reg, `${P}contexts_injected_total`, 'Span contexts returned to HAProxy (inject=).', () => t.contextsInjected)
  labelledCounter(
    reg,
    `${P}span_limit_hits_total`,
    'Span limits hit: attributes or events or links dropped, values truncated.',
    'limit',
    () =>
      Object.entries({
        attributes_dropped: t.limits.attributesDropped,
        values_truncated: t.limits.valuesTruncated,
        events_dropped: t.limits.eventsDropped,
        links_dropped: t.limits.linksDropped,
      }),
    { seed: ['attributes_dropped', 'values_truncated', 'events_dropped', 'links_dropped'] },
  )

  // Export
  counter(reg, `${P}spans_queued_total`, 'Spans queued for export.', () => e.spansQueued)
  counter(reg, `${P}spans_exported_total`, 'Spans the backend accepted.', () => e.spansExported)
  counter(reg, `${P}export_batches_exported_total`, 'Export requests that succeeded.', () => e.batchesExported)
  counter(reg, `${P}export_batches_failed_total`, 'Export requests that failed, each counted when it fails (a batch sent again counts once per attempt).', () => e.batchesFailed)
  new ScaledHistogram(reg, `${P}export_duration_seconds`, 'Duration of one export request (one attempt).', e.exportMs, 1e3)
  gauge(reg, `${P}export_failing_seconds`, 'How long exports have been failing without a success (0 when the last one succeeded).', () => exportFailingMs(s) / 1000)
  gauge(reg, `${P}export_queue_depth`, 'Spans waiting in the export queue.', () => e.queueDepth)
  gauge(reg, `${P}export_queue_capacity`, 'Spans queued or in flight at most (--queue-size); beyond, trees are dropped.', () => s.queueCapacity)
  gauge(reg, `${P}export_inflight_spans`, 'Spans handed to export workers and not yet acknowledged.', () => e.inFlight)
  gauge(reg, `${P}export_workers_up`, 'Export worker threads ready.', () => e.workersUp)
  counter(reg, `${P}export_worker_restarts_total`, 'Export worker threads restarted after a crash.', () => e.workerRestarts)
  if (s.logIntake) logIntakeMetrics(reg, P, s.logIntake)
  return reg
}

/** The log intake (--log-intake): records in, what became of them, and what was lost before they came. */
function logIntakeMetrics(reg: Registry, P: string, intake: NonNullable<MetricsSource['logIntake']>): void {
  const l = intake.stats
  counter(reg, `${P}log_records_received_total`, 'HAProxy log records received (datagrams, or records of a TCP stream).', () => l.records)
  counter(reg, `${P}log_records_traced_total`, 'Log records whose compact record became a span tree.', () => l.traced)
  counter(reg, `${P}log_records_untraced_total`, 'Valid log records without a compact record (requests HAProxy did not trace).', () => l.untraced)
  counter(reg, `${P}log_records_sampled_out_total`, 'Compact log records with the sampled flag off.', () => l.sampledOut)
  labelledCounter(reg, `${P}log_records_rejected_total`, 'Log records that gave nothing, by reason.', 'reason', () => entries(l.rejected), {
    seed: LOG_REJECT_REASONS,
  })
  labelledCounter(
    reg,
    `${P}log_records_dropped_total`,
    'Log records lost before the agent could read them: by="haproxy" as HAProxy reported (its ring was full), by="kernel" as the kernel counted (the UDP receive buffer was full).',
    'by',
    () => [
      ['haproxy', l.haproxyDropped],
      ['kernel', intake.kernelDrops()],
    ],
    { seed: ['haproxy', 'kernel'] },
  )
  gauge(reg, `${P}log_connections_open`, 'TCP log connections open (HAProxy ring forwarders).', () => l.tcpConnectionsOpen)
  counter(reg, `${P}log_connections_rejected_total`, 'TCP log connections refused at --log-max-connections.', () => l.tcpConnectionsRejected)
  counter(reg, `${P}log_tcp_reads_total`, 'Reads of TCP log streams (records per read: how many records one wake-up takes).', () => l.tcpReads)
  counter(reg, `${P}log_tcp_rests_total`, 'TCP log reads followed by a --log-read-pause rest (the read emptied the socket).', () => l.tcpRests)
}

let processRegistry: Registry | null = null

/**
 * process_* and nodejs_* metrics. One per process, made on first use: they
 * describe the process, not a daemon, and collectDefaultMetrics installs an
 * event-loop-delay monitor and a GC observer that it never removes.
 */
export function processMetricsRegistry(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

export const CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** The whole /metrics body: ours first, then the process metrics. */
export async function renderMetrics(ours: Registry): Promise<string> {
  const [a, b] = await Promise.all([ours.metrics(), processMetricsRegistry().metrics()])
  return `${a}\n${b}`
}
