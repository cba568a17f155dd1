// The composition root: builds the tracing core (export pool, span queue,
// trace store, tracing handler: tracing-core.ts) or, with --cpu-sched
// tracing-idle, the tracing thread that runs it (tracing-thread.ts), the
// SPOP server and the log intake (when asked) from one Config, and stops
// them in the order that loses nothing: stop accepting and answer in-flight
// frames, end open trees, flush the queue, let the workers finish exporting.

import type { Logger } from 'pino'
import { AgentServer, type ListenAddress, type NotifyHandler } from '../agent/index.js'
import type { Config } from './config.js'
import { applyCpuSched, schedGroupProblem } from './cpu-sched.js'
import type { ExportPool } from '../export/pool.js'
import type { ExportStats } from '../export/stats.js'
import { LogIntake } from '../intake/log/index.js'
import { MetricsServer } from '../metrics/server.js'
import { listenProblem, StartError } from './preflight.js'
import { ConfigError } from '../util/config-error.js'
import { type Clock, SystemClock } from '../tracing/clock.js'
import type { TracingStats } from '../tracing/stats.js'
import type { TraceStore } from '../tracing/trace-store.js'
import { createTracingCore } from './tracing-core.js'
import { TracingThread, type TracingThreadLimits } from './tracing-thread.js'
import { VERSION } from './version.js'

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
  /** The trace store; null when it lives in the tracing thread (--cpu-sched tracing-idle). */
  readonly store: TraceStore | null
  /** Open trees and the tracing counters, wherever the store lives. */
  readonly trees: { readonly size: number; readonly stats: TracingStats }
  /**
   * NOTIFYs answered and waiting to be applied; drain() applies them now (or,
   * with the tracing thread, hands them over to it now).
   */
  readonly tracing: { drain(): void; readonly pending: number }
  readonly exportStats: ExportStats
  /** The export pool; null with --exporter none, or when it lives in the tracing thread. */
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
   * clock; a longer batch delay (to see NOTIFYs waiting); the tracing
   * thread's bounds.
   */
  opts: { clock?: Clock; traceBatchDelayMs?: number; agentRestarts?: number; signal?: AbortSignal; tracingThread?: TracingThreadLimits } = {},
): Promise<Daemon> {
  // Before any worker thread starts: they inherit the policy.
  try {
    applyCpuSched(config.cpuSched)
  } catch (err) {
    throw new StartError((err as Error).message)
  }
  const groupProblem = schedGroupProblem(config.cpuSched)
  if (groupProblem !== null) logger.warn(groupProblem)
  const clock = opts.clock ?? new SystemClock()
  const core =
    config.cpuSched === 'tracing-idle'
      ? null
      : createTracingCore(config, logger, clock, {
          ...(opts.traceBatchDelayMs !== undefined ? { traceBatchDelayMs: opts.traceBatchDelayMs } : {}),
          // `agent` is assigned below, before any NOTIFY can arrive.
          onError: (err) => agent.handlerFailed(err),
        })
  const thread = core === null ? new TracingThread(config, logger, clock, opts.tracingThread) : null
  const tracingReady =
    core?.poolReady ??
    thread!.start().catch((err: unknown) => {
      throw new StartError((err as Error).message)
    })
  tracingReady.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
  const store = core?.store ?? null
  const trees = core?.store ?? thread!.trees
  const tracing = core?.tracing ?? thread!
  const exportStats = core?.exportStats ?? thread!.exportStats
  const pool = core?.pool ?? null
  let handler: NotifyHandler = core?.tracing.handle ?? thread!.handle
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
          store: store!, // --cpu-sched tracing-idle with --log-intake is refused by the configuration
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
          store: trees,
          exportStats,
          queueCapacity: config.export.maxQueueSize,
          exporting: config.export.exporter !== 'none',
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
    ;[address] = await Promise.all([listening, tracingReady])
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
    await (core ? core.pool?.shutdown(1000) : thread!.close(1000))
    throw err
  }
  // The tracing thread has its own reaper.
  const reaper = setInterval(() => core?.reap(), 1000)
  reaper.unref()

  let closing: Promise<void> | null = null
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      shuttingDown = true
      const budget = config.shutdownTimeoutMs
      const deadline = Date.now() + budget - Math.min(EXIT_RESERVE_MS, budget / 4)
      const left = (): number => Math.max(0, deadline - Date.now())
      await Promise.all([agent.close(Math.min(3000, left() / 3)), logIntake?.close()])
      clearInterval(reaper)
      // NOTIFYs already answered are traced before the open trees end, then the export flushes.
      await (core ? core.finish(left()) : thread!.close(left()))
      logger.info(
        {
          exported: exportStats.spansExported,
          dropped: Object.fromEntries(exportStats.spansDropped),
        },
        'stopped',
      )
    })().finally(() => metrics?.close()))

  return { config, address, agent, store, trees, tracing, exportStats, pool, logIntake, metricsAddress: metrics?.address ?? null, close }
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
