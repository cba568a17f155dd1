// Everything behind the NotifyHandler: the export pool, the span queue, the
// trace store and the tracing handler, built from one Config, and their
// orderly end (apply what was answered, end the open trees, flush, stop the
// workers). The daemon's main thread runs one; with --cpu-sched tracing-idle
// the tracing thread runs it instead (tracing-thread-worker.ts), and the
// main thread only answers HAProxy.

import type { Logger } from 'pino'
import type { Config } from './config.js'
import { ExportPool } from '../export/pool.js'
import { SpanQueue } from '../export/span-queue.js'
import { ExportStats } from '../export/stats.js'
import type { Clock } from '../tracing/clock.js'
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
export const TRACE_BATCH_DELAY_MS = 10
export const TRACE_BATCH_MAX = 64
/** ...or NOTIFYs decoded from this many frame bytes: what waiting may hold, whatever the frame size. */
const TRACE_BATCH_MAX_BYTES = 1 << 20

export interface TracingCore {
  readonly exportStats: ExportStats
  readonly pool: ExportPool | null
  /** Resolves once the export workers are up (at once without a pool). */
  readonly poolReady: Promise<void>
  readonly queue: SpanQueue
  readonly store: TraceStore
  readonly tracing: TracingHandler
  /**
   * The reaper's tick: what waits is applied first, so the reaper sees each
   * tree's newest event. `nowUs`: the time idleness is measured at (the
   * clock's by default).
   */
  reap(nowUs?: number): void
  /**
   * Applies what was answered, ends the open trees, flushes the queue and
   * stops the workers, within `budgetMs`. Logs what could not be exported.
   */
  finish(budgetMs: number): Promise<void>
}

export function createTracingCore(
  config: Config,
  logger: Logger,
  clock: Clock,
  /** `exportInThread`: this thread sends the export requests itself (ExportPool's `inThread`). */
  opts: { traceBatchDelayMs?: number; exportInThread?: boolean; onError: (err: unknown) => void },
): TracingCore {
  const exportStats = new ExportStats()
  const exportLogger = logger.child({ component: 'export' })
  const pool =
    config.export.exporter === 'none'
      ? null
      : new ExportPool({
          config: config.export,
          scope: { name: 'spoa-tracer', version: VERSION },
          stats: exportStats,
          logger: exportLogger,
          inThread: opts.exportInThread === true,
        })
  // Workers load OpenTelemetry while the listener comes up: HAProxy's first
  // health check may arrive within milliseconds of starting the agent.
  const poolReady = pool ? pool.start() : Promise.resolve()
  poolReady.catch(() => {}) // awaited by the caller; avoid an unhandled rejection meanwhile
  const queue = new SpanQueue(pool, config.export, exportStats, exportLogger, { name: 'spoa-tracer', version: VERSION })
  const store = new TraceStore({
    sink: queue,
    limits: config.tree,
    spanLimits: config.spanLimits,
    sampler: config.tracing.sampler,
    propagators: config.tracing.propagators,
    logger: logger.child({ component: 'tracing' }),
  })
  // Answer first, trace in batches: see tracing-handler.ts.
  const tracing = createTracingHandler(store, clock, {
    delayMs: opts.traceBatchDelayMs ?? TRACE_BATCH_DELAY_MS,
    maxPending: TRACE_BATCH_MAX,
    maxPendingBytes: TRACE_BATCH_MAX_BYTES,
    onError: opts.onError,
  })

  const finish = async (budgetMs: number): Promise<void> => {
    const deadline = Date.now() + budgetMs
    const left = (): number => Math.max(0, deadline - Date.now())
    const droppedBefore = new Map(exportStats.spansDropped)
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
  }

  return {
    exportStats,
    pool,
    poolReady,
    queue,
    store,
    tracing,
    reap: (nowUs = clock.nowUs()) => {
      tracing.drain()
      store.reap(nowUs)
    },
    finish,
  }
}

/** Spans dropped since `before`, by reason. */
function droppedSince(now: ReadonlyMap<string, number>, before: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [reason, n] of now) if (n > (before.get(reason) ?? 0)) out[reason] = n - (before.get(reason) ?? 0)
  return out
}
