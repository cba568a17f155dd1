// The main thread's side of the tracing thread (--cpu-sched tracing-idle).
// Its NotifyHandler answers each NOTIFY at once, as the no-op agent would,
// and copies the NOTIFY's bytes into a batch for the tracing thread
// (tracing-thread-worker.ts), which owns the trees and the export and runs
// under SCHED_IDLE. Why: in a closed loop every microsecond the answering
// thread spends on spans is in some request's path, and a tracing thread at
// the normal policy preempts HAProxy on the shared cores instead
// (docs/BENCHMARKS.md). A batch leaves after 256 NOTIFYs (after this read's
// ACKs are written) or 10 ms, transferred, not copied.
//
// Bounds, so that a tracing thread that gets no CPU never costs HAProxy
// anything but its traces:
//   - NOTIFYs handed over and not yet applied hold at most MAX_BEHIND_BYTES;
//     beyond that a NOTIFY's messages are dropped, counted as rejected
//     (tracing_thread_behind) and logged, rate-limited;
//   - a NOTIFY that asks for a context (inject=) needs the trees: it goes to
//     the tracing thread after the batch before it, and its ACK waits for the
//     answer at most INJECT_WAIT_MS; later, it is answered without the
//     context (counted: inject_late) and the tree goes on;
//   - the tracing thread itself holds NOTIFYs while the export queue is over
//     half full (tracing-thread-worker.ts), so catching up drops no trees.
// Counters come back four times a second (when the thread gets CPU) into objects of the same shape as
// the main thread's own (`trees`, `exportStats`), so /metrics, the
// statistics line and the benchmarks read them unchanged. A tracing thread
// that dies takes the process with it (exit 1), as a crash of the main
// thread would: the supervisor, or HAProxy's master, starts a new agent.

import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { NotifyContext, NotifyHandler } from '../agent/index.js'
import type { Config } from './config.js'
import { ExportStats } from '../export/stats.js'
import type { Action, Message } from '../spop/index.js'
import type { Clock } from '../tracing/clock.js'
import { TracingStats } from '../tracing/stats.js'
import { asksForContext } from '../tracing/tracing-handler.js'
import { bump } from '../util/counters.js'
import { LogLimiter } from '../util/log-limiter.js'
import { copyStatsInto } from '../util/stats-mirror.js'
import { TRACE_BATCH_DELAY_MS } from './tracing-core.js'

/** Per NOTIFY in a batch: payload length (u32), arrival time in epoch µs (f64), engine index (u16), then the payload. */
export const BATCH_HEADER = 14
/** Engine index of a NOTIFY whose connection has no engine-id. */
export const NO_ENGINE = 0xffff
const MAX_BEHIND_BYTES = 32 << 20
/**
 * A batch leaves after this many NOTIFYs, or TRACE_BATCH_DELAY_MS. More
 * than the main thread's own batches of decoded messages (tracing-core.ts):
 * only bytes wait here, and every hand-over is a postMessage, which cost
 * the main thread as much as copying the NOTIFYs did.
 */
const HANDOVER_MAX = 256
const INJECT_WAIT_MS = 100

/** For tests: smaller bounds, and a tracing thread that takes its time over each inject=. */
export interface TracingThreadLimits {
  maxBehindBytes?: number
  injectWaitMs?: number
  injectDelayMs?: number
}
/**
 * A batch's buffer is sized from the last batches' (a quarter more than
 * their running average, 4 KiB at least): every batch is a new buffer,
 * transferred and freed by the tracing thread's GC, and buffers larger than
 * needed showed up as RSS.
 */
const MIN_BATCH_BYTES = 4 << 10
const READY_TIMEOUT_MS = 30_000
/**
 * The smallest young generation V8 takes (1 MB semi-spaces). The tracing
 * thread runs in HAProxy's gaps, on the cores HAProxy uses, and what it
 * sweeps through evicts HAProxy's data from their caches: with 24 MB,
 * HAProxy kept fewer requests/s in four A/B pairs of six (docs/BENCHMARKS.md;
 * suggestive, not proven). It cost the tracing thread no measurable CPU,
 * and saves about 5 MB of RSS.
 */
const TRACING_THREAD_LIMITS = { maxYoungGenerationSizeMb: 3 }

export type ToTracingThread =
  | { type: 'batch'; buf: ArrayBuffer; len: number; engines: string[] }
  | { type: 'inject'; id: number; engineId: string | null; nowUs: number; payload: Uint8Array }
  | { type: 'close'; budgetMs: number }

export type FromTracingThread =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'log'; line: string }
  | { type: 'actions'; id: number; actions: Action[] }
  | { type: 'stats'; applied: number; trees: number; tracing: TracingStats; exportStats: ExportStats }
  | { type: 'closed' }

// Under tap's TypeScript loader this module is a .ts file and so is its worker.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './tracing-thread-worker.ts' : './tracing-thread-worker.js', import.meta.url)
const NO_ACTIONS: Action[] = []
const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
}

export class TracingThread {
  /** Open trees and the tracing counters, as of the tracing thread's last report. */
  readonly trees = { size: 0, stats: new TracingStats() }
  readonly exportStats = new ExportStats()
  private readonly worker: Worker
  /** Bytes of NOTIFYs handed over and not yet applied: added here, taken off by the tracing thread. */
  private readonly behind = new Int32Array(new SharedArrayBuffer(4))
  /** NOTIFYs handed over so far, and applied as of the last report (so its counters include them). */
  private handed = 0
  private reportedApplied = 0
  private buf = Buffer.allocUnsafeSlow(MIN_BATCH_BYTES)
  /** Running average of the batches' sizes, bytes. */
  private batchBytes = MIN_BATCH_BYTES
  private pos = 0
  private frames = 0
  private engines: string[] = []
  private readonly engineIndex = new Map<string, number>()
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null
  private nextId = 1
  private readonly injects = new Map<number, { resolve: (a: Action[]) => void; timer: NodeJS.Timeout }>()
  /** Counted here, added to the tracing thread's counters at each report. */
  private readonly rejectedHere = new Map<string, number>()
  private readonly argErrorsHere = new Map<string, number>()
  private readonly limiter = new LogLimiter()
  private readonly ready: Promise<void>
  private closing = false
  private exited = false
  /** Up and ready: from then on, its end is the process's. */
  private started = false
  /** This side's own lines. */
  private readonly log: Logger
  private injectWarned = false
  private readonly maxBehindBytes: number
  private readonly injectWaitMs: number
  private onClosed: (() => void) | null = null

  constructor(
    config: Config,
    private readonly logger: Logger,
    private readonly clock: Clock,
    limits: TracingThreadLimits = {},
  ) {
    this.log = logger.child({ component: 'tracing' })
    this.maxBehindBytes = limits.maxBehindBytes ?? MAX_BEHIND_BYTES
    this.injectWaitMs = limits.injectWaitMs ?? INJECT_WAIT_MS
    const workerData = { config, level: logger.level, behind: this.behind, injectDelayMs: limits.injectDelayMs ?? 0 }
    this.worker = new Worker(WORKER_URL, { workerData, name: 'tracing', resourceLimits: TRACING_THREAD_LIMITS })
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the tracing thread was not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
      timer.unref()
      this.worker.on('message', (m: FromTracingThread) => {
        switch (m.type) {
          case 'ready':
            clearTimeout(timer)
            this.started = true
            return resolve()
          case 'fatal':
            clearTimeout(timer)
            return reject(new Error(m.message))
          default:
            return this.onMessage(m)
        }
      })
      this.worker.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
        this.died(`the tracing thread failed: ${err.message}`)
      })
      this.worker.on('exit', (code) => {
        clearTimeout(timer)
        this.exited = true
        this.onClosed?.()
        reject(new Error(`the tracing thread exited with status ${code}`))
        this.died(`the tracing thread exited with status ${code}`)
      })
    })
  }

  /** Resolves once the tracing thread and its exporter are up; rejects with one line if they cannot be. */
  start(): Promise<void> {
    return this.ready
  }

  /**
   * NOTIFYs answered and not yet applied by the tracing thread, or applied
   * after its last report: 0 only once the counters here include them all.
   */
  get pending(): number {
    return this.frames + this.handed - this.reportedApplied
  }

  readonly handle: NotifyHandler = (messages: Message[], ctx: NotifyContext) => {
    const nowUs = this.clock.nowUs()
    const length = ctx.frame.length - ctx.messagesAt
    if (Atomics.load(this.behind, 0) + this.pos + length > this.maxBehindBytes || this.closing) {
      this.dropped(messages, this.closing ? 'tracing_thread_stopping' : 'tracing_thread_behind')
      return NO_ACTIONS
    }
    if (asksForContext(messages)) return this.askContext(messages, ctx, nowUs)
    const need = this.pos + BATCH_HEADER + length
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2))
      this.buf.copy(bigger, 0, 0, this.pos)
      this.buf = bigger
    }
    const b = this.buf
    b.writeUInt32LE(length, this.pos)
    b.writeDoubleLE(nowUs, this.pos + 4)
    b.writeUInt16LE(this.engine(ctx.engineId), this.pos + 12)
    ctx.frame.copy(b, this.pos + BATCH_HEADER, ctx.messagesAt)
    this.pos = need
    // A full batch leaves right after this read's ACKs are written, not before them.
    if (++this.frames >= HANDOVER_MAX) this.immediate ??= setImmediate(this.flush)
    else this.timer ??= setTimeout(this.flush, TRACE_BATCH_DELAY_MS).unref()
    return NO_ACTIONS
  }

  /** Hands the batch over now (shutdown; an inject= NOTIFY, which must come after it). */
  drain(): void {
    this.flush()
  }

  /**
   * Hands over what is left and lets the tracing thread end the open trees
   * and flush the export within budgetMs; resolves once it has (or at the
   * budget, plus a margin for its last report).
   */
  async close(budgetMs: number): Promise<void> {
    this.closing = true
    if (this.exited) return
    this.flush()
    // Not unref'd: the wait is bounded, and it may be all that keeps the process up meanwhile.
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      this.onClosed = resolve
      timer = setTimeout(resolve, budgetMs + 200)
      this.worker.postMessage({ type: 'close', budgetMs } satisfies ToTracingThread)
    })
    clearTimeout(timer)
    this.onClosed = null
    await this.worker.terminate()
  }

  private readonly flush = (): void => {
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.immediate !== null) clearImmediate(this.immediate)
    this.timer = null
    this.immediate = null
    if (this.frames === 0) return
    const buf = this.buf.buffer as ArrayBuffer
    Atomics.add(this.behind, 0, this.pos)
    this.handed += this.frames
    this.worker.postMessage({ type: 'batch', buf, len: this.pos, engines: this.engines } satisfies ToTracingThread, [buf])
    this.batchBytes += (this.pos - this.batchBytes) / 8
    this.buf = Buffer.allocUnsafeSlow(Math.max(MIN_BATCH_BYTES, Math.ceil(this.batchBytes * 1.25)))
    this.pos = 0
    this.frames = 0
    this.engines = []
    this.engineIndex.clear()
  }

  private engine(engineId: string | null): number {
    if (engineId === null) return NO_ENGINE
    let i = this.engineIndex.get(engineId)
    if (i === undefined) {
      i = this.engines.push(engineId) - 1
      this.engineIndex.set(engineId, i)
    }
    return i
  }

  private askContext(messages: Message[], ctx: NotifyContext, nowUs: number): Promise<Action[]> {
    if (!this.injectWarned) {
      this.injectWarned = true
      this.log.warn(
        `inject= while --cpu-sched tracing-idle: HAProxy waits for the tracing thread, which only gets idle CPU; on a busy host an inject= is answered without the context after ${this.injectWaitMs} ms (inject_late). With spoe-propagation.cfg, --cpu-sched normal answers at once`,
      )
    }
    this.flush()
    this.handed++
    const id = this.nextId++
    const payload = new Uint8Array(ctx.frame.subarray(ctx.messagesAt)) // a copy: the frame is a view of a socket chunk
    this.worker.postMessage({ type: 'inject', id, engineId: ctx.engineId, nowUs, payload } satisfies ToTracingThread)
    return new Promise<Action[]>((resolve) => {
      const timer = setTimeout(() => {
        this.injects.delete(id)
        bump(this.argErrorsHere, 'inject_late')
        this.warn('inject-late', `the tracing thread did not answer an inject= within ${this.injectWaitMs} ms: answered without the context`, {
          messages: messages.length,
        })
        resolve(NO_ACTIONS)
      }, this.injectWaitMs)
      this.injects.set(id, { resolve, timer })
    })
  }

  private dropped(messages: Message[], reason: string): void {
    bump(this.rejectedHere, reason, messages.length)
    if (reason === 'tracing_thread_behind') {
      this.warn(reason, `the tracing thread is ${this.maxBehindBytes} bytes of NOTIFYs behind (no idle CPU?): their messages are dropped`, {
        messages: messages.length,
      })
    }
  }

  private onMessage(m: FromTracingThread): void {
    switch (m.type) {
      case 'log':
        return this.relayLog(m.line)
      case 'actions': {
        const waiting = this.injects.get(m.id)
        if (waiting === undefined) return // answered already, without the context
        this.injects.delete(m.id)
        clearTimeout(waiting.timer)
        return waiting.resolve(m.actions)
      }
      case 'stats': {
        this.reportedApplied = m.applied
        this.trees.size = m.trees
        copyStatsInto(this.trees.stats, m.tracing)
        for (const [k, n] of this.rejectedHere) bump(this.trees.stats.messagesRejected, k, n)
        for (const [k, n] of this.argErrorsHere) bump(this.trees.stats.argumentErrors, k, n)
        copyStatsInto(this.exportStats, m.exportStats)
        return
      }
      case 'closed':
        return this.onClosed?.()
    }
  }

  /** A line of the tracing thread's logger (with its own component field), through this thread's logger: its destination and level. */
  private relayLog(line: string): void {
    let o: Record<string, unknown>
    try {
      o = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    const { level, msg, ...rest } = o
    const name = LEVELS[level as number] ?? 'info'
    this.logger[name]({ thread: 'tracing', ...rest }, typeof msg === 'string' ? msg : '')
  }

  private warn(key: string, msg: string, obj: object): void {
    const suppressed = this.limiter.allow(key)
    if (suppressed < 0) return
    this.log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }

  private died(why: string): void {
    if (this.closing || !this.started) return // a failed start is start()'s to report
    this.closing = true
    this.log.fatal(why)
    // As an uncaught exception on the main thread would: the agent is restarted by whoever runs it.
    setImmediate(() => process.exit(1))
  }
}
