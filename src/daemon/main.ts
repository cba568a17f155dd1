// The composition root: builds the export pool, the span queue, the trace
// store, the tracing handler, the SPOP server and the log intake (when asked)
// from one Config, and stops them in the order that loses nothing: stop
// accepting and answer in-flight frames, end open trees, flush the queue,
// let the workers finish exporting.

import type { Logger } from 'pino'
import { AgentServer, type ListenAddress, type NotifyHandler } from '../agent/index.js'
import type { Config } from './config.js'
import { applyCpuSched } from './cpu-sched.js'
import { ExportPool } from '../export/pool.js'
import { SpanQueue } from '../export/span-queue.js'
import { ExportStats } from '../export/stats.js'
import { LogIntake } from '../intake/log/index.js'
import { MetricsServer } from '../metrics/server.js'
import { listenProblem, StartError } from './preflight.js'
import { ConfigError } from '../util/config-error.js'
import { type Clock, SystemClock } from '../tracing/clock.js'
import { TraceStore } from '../tracing/trace-store.js'
import { createTracingHandler, type TracingHandler } from '../tracing/tracing-handler.js'
import { VERSION } from './version.js'

/**
 * NOTIFYs answered but not yet applied wait at most this long, or until this
 * many wait. Long enough to batch a few thousand NOTIFYs a second, short
 * against the reaper's idle timeout and the export delay. 64, not more:
 * batches of 256 saved no more CPU, but the decoded messages they keep
 * alive across a young-generation GC made V8 grow it, +30 MB of RSS
 * (docs/BENCHMARKS.md); a batch of 64 is also well under a millisecond of
 * work, the longest other connections' ACKs wait for it.
 */
const TRACE_BATCH_DELAY_MS = 10
const TRACE_BATCH_MAX = 64
/** ...or NOTIFYs decoded from this many frame bytes: what waiting may hold, whatever the frame size. */
const TRACE_BATCH_MAX_BYTES = 1 << 20
/**
 * Of --shutdown-timeout, what the export flush leaves for the steps after it
 * (a quarter, up to this): ending the worker threads (tens to hundreds of ms
 * on a loaded machine), the last log lines and the exit, so that the process
 * is gone by the deadline.
 */
const EXIT_RESERVE_MS = 1000

export interface Daemon {
  readonly config: Config
  readonly address: ListenAddress
  readonly agent: AgentServer
  readonly store: TraceStore
  /** NOTIFYs answered and waiting to be applied; drain() applies them now. */
  readonly tracing: TracingHandler
  readonly exportStats: ExportStats
  readonly pool: ExportPool | null
  /** HAProxy's log stream (--log-intake), or null when off. */
  readonly logIntake: LogIntake | null
  /** Where /metrics, /healthz and /readyz are served (the bound port), or null when off. */
  readonly metricsAddress: ListenAddress | null
  /** Graceful stop within config.shutdownTimeoutMs. Runs once; later calls get the same promise. */
  close(): Promise<void>
}

export async function startDaemon(
  config: Config,
  logger: Logger,
  /**
   * signal: a stop requested while the listener waits for its address
   * (--listen-retry) rejects with an AbortError. agentRestarts: restarts of
   * this agent by its supervisor so far, for /metrics. For tests: a manual
   * clock; a longer batch delay (to see NOTIFYs waiting).
   */
  opts: { clock?: Clock; traceBatchDelayMs?: number; agentRestarts?: number; signal?: AbortSignal } = {},
): Promise<Daemon> {
  // Before any worker thread starts: they inherit the policy.
  try {
    applyCpuSched(config.cpuSched)
  } catch (err) {
    throw new StartError((err as Error).message)
  }
  const clock = opts.clock ?? new SystemClock()
  const exportStats = new ExportStats()
  const pool =
    config.export.exporter === 'none'
      ? null
      : new ExportPool({
          config: config.export,
          scope: { name: 'spoa-tracer', version: VERSION },
          stats: exportStats,
          logger: logger.child({ component: 'export' }),
        })
  // Workers load OpenTelemetry while the listener comes up: HAProxy's first
  // health check may arrive within milliseconds of starting the agent.
  const poolReady = pool ? pool.start() : Promise.resolve()
  poolReady.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
  const queue = new SpanQueue(pool, config.export, exportStats, logger.child({ component: 'export' }), {
    name: 'spoa-tracer',
    version: VERSION,
  })
  const store = new TraceStore({
    sink: queue,
    limits: config.tree,
    spanLimits: config.spanLimits,
    sampler: config.tracing.sampler,
    propagators: config.tracing.propagators,
    logger: logger.child({ component: 'tracing' }),
  })
  // Answer first, trace in batches: see tracing-handler.ts. `agent` is
  // assigned below, before any NOTIFY can arrive.
  const tracing = createTracingHandler(store, clock, {
    delayMs: opts.traceBatchDelayMs ?? TRACE_BATCH_DELAY_MS,
    maxPending: TRACE_BATCH_MAX,
    maxPendingBytes: TRACE_BATCH_MAX_BYTES,
    onError: (err) => agent.handlerFailed(err),
  })
  let handler: NotifyHandler = tracing.handle
  if (config.processingDelayMs > 0) handler = delayed(handler, config.processingDelayMs)
  if (config.cpuSched === 'idle') handler = warnOnFirstNotify(handler, logger)

  const agent = new AgentServer({
    handler,
    logger: logger.child({ component: 'spop' }),
    listen: config.listen,
    backlog: config.backlog,
    maxFrameSize: config.maxFrameSize,
    capabilities: config.capabilities,
    maxConnections: config.maxConnections,
    timeouts: config.timeouts,
    listenRetryMs: config.listenRetryMs,
    ...(config.socketMode !== null ? { socketMode: config.socketMode } : {}),
    ...(config.socketOwner !== null ? { socketOwner: config.socketOwner } : {}),
  })
  const logIntake =
    config.logIntake.addresses.length === 0
      ? null
      : new LogIntake({
          addresses: config.logIntake.addresses,
          store,
          logger: logger.child({ component: 'log-intake' }),
          limits: config.logIntake,
          socketMode: config.socketMode,
          socketOwner: config.socketOwner,
        })
  // Set when close() starts: /readyz answers 503 from then on.
  let shuttingDown = false
  let metrics: MetricsServer | null = null
  let address: ListenAddress
  try {
    // The endpoint first: a probe gets 503 rather than a refused connection until the listener is up.
    const metricsAddress = config.metricsAddress
    if (metricsAddress !== null) {
      metrics = await MetricsServer.start(metricsAddress, {
        source: {
          version: VERSION,
          agent,
          store,
          exportStats,
          queueCapacity: config.export.maxQueueSize,
          exporting: pool !== null,
          readyExportFailureThresholdMs: config.readyExportFailureThresholdMs,
          agentRestarts: opts.agentRestarts ?? 0,
          logIntake,
          shuttingDown: () => shuttingDown,
        },
        logger: logger.child({ component: 'metrics' }),
      }).catch((err: unknown) => {
        throw listenProblem(metricsAddress, err, { host: '--metrics-address' })
      })
    }
    const listening = agent.listen(opts.signal).catch((err: unknown) => {
      if ((err as Error).name === 'AbortError') throw err
      throw listenProblem(config.listen, err, { host: '--address', port: '--port', retry: true })
    })
    ;[address] = await Promise.all([listening, poolReady])
    if (logIntake !== null) {
      await logIntake.listen().catch((err: unknown) => {
        const e = err as NodeJS.ErrnoException
        const what = e.message.replace(/^log intake /, '')
        // In use may clear by itself (status 1); anything else is the configuration's (status 2).
        throw e.code === 'EADDRINUSE' ? new StartError(`--log-intake: ${what}`) : new ConfigError('--log-intake', what)
      })
    }
  } catch (err) {
    await logIntake?.close()
    await metrics?.close()
    agent.destroy()
    await pool?.shutdown(1000)
    throw err
  }
  const reaper = setInterval(() => {
    tracing.drain() // a tree's newest event may be waiting: the reaper must see it
    store.reap(clock.nowUs())
  }, 1000)
  reaper.unref()

  let closing: Promise<void> | null = null
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      shuttingDown = true
      const budget = config.shutdownTimeoutMs
      const deadline = Date.now() + budget - Math.min(EXIT_RESERVE_MS, budget / 4)
      const left = (): number => Math.max(0, deadline - Date.now())
      const droppedBefore = new Map(exportStats.spansDropped)
      await Promise.all([agent.close(Math.min(3000, left() / 3)), logIntake?.close()])
      clearInterval(reaper)
      tracing.drain() // NOTIFYs already answered are traced before the open trees end
      const ended = store.endAll(clock.nowUs())
      if (ended > 0) logger.info({ trees: ended }, 'open span trees ended at shutdown, marked incomplete')
      // The workers get the last part of the time to finish what is in flight.
      await queue.drain(Math.max(0, left() - Math.min(500, left() / 2)))
      await pool?.shutdown(left())
      const dropped = droppedSince(exportStats.spansDropped, droppedBefore)
      const n = Object.values(dropped).reduce((a, b) => a + b, 0)
      if (n > 0) {
        const error = pool?.health.error
        logger.warn(
          { spans: n, dropped, ...(error ? { exportError: error } : {}) },
          `stopping: ${n} span(s) could not be exported in time and were dropped`,
        )
      }
      logger.info(
        {
          exported: exportStats.spansExported,
          dropped: Object.fromEntries(exportStats.spansDropped),
        },
        'stopped',
      )
    })().finally(() => metrics?.close()))

  return { config, address, agent, store, tracing, exportStats, pool, logIntake, metricsAddress: metrics?.address ?? null, close }
}

/** Spans dropped since `before`, by reason. */
function droppedSince(now: ReadonlyMap<string, number>, before: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [reason, n] of now) if (n > (before.get(reason) ?? 0)) out[reason] = n - (before.get(reason) ?? 0)
  return out
}

/**
 * --cpu-sched idle is for an agent that only takes the log stream: a NOTIFY
 * says HAProxy sends it SPOE messages and waits for each ACK from an agent
 * that only gets idle CPU. Said once; the messages are answered as always.
 */
function warnOnFirstNotify(handler: NotifyHandler, logger: Logger): NotifyHandler {
  let warned = false
  return (messages, ctx) => {
    if (!warned) {
      warned = true
      logger.warn('SPOE messages while --cpu-sched idle: HAProxy waits for each ACK of an agent that only gets idle CPU; --cpu-sched idle is for an agent that only takes the log stream')
    }
    return handler(messages, ctx)
  }
}

/** -t/--processing-delay: answer each NOTIFY only after a delay (to test HAProxy's timeouts). */
function delayed(handler: NotifyHandler, ms: number): NotifyHandler {
  return (messages, ctx) => {
    const actions = handler(messages, ctx)
    return new Promise((resolve) => setTimeout(() => resolve(actions), ms))
  }
}
