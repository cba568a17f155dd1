// The export worker pool: N worker threads, each running its own exporter.
// Batches go to the ready worker with the least in flight, up to a few
// exports per worker; the pool accounts for every span it hands out (exported,
// failed, or lost with a crashed worker) and restarts crashed workers with
// backoff. Every attempt's result is counted and judged (health.ts) the
// moment the worker reports it. shutdown() lets in-flight exports finish
// within a deadline. With `inThread`, one runner in the calling thread
// takes the workers' place (in-thread-worker.ts).

import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { FinishedSpan } from '../tracing/types.js'
import { bump } from '../util/counters.js'
import { LogLimiter } from '../util/log-limiter.js'
import { redactUrl } from '../util/redact.js'
import type { ExportConfig } from './config.js'
import { BodyPool } from './body-pool.js'
import { ExportHealth, type RetryOutcome } from './health.js'
import type { ExportWorker } from './in-thread-worker.js'
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'
import type { ExportStats } from './stats.js'

// A worker only sends bytes it was handed: a small young generation is enough,
// and V8 would otherwise let it grow to 48 MB (3 x 16 MB semi-spaces) per
// worker, which shows up as RSS an operator pays for nothing.
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8 }

// Under tap's TypeScript loader this module is a .ts file and so is its worker.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url)

/**
 * `body` if it owns its whole ArrayBuffer, else a copy that does. A body is
 * moved to the worker (transferred, not copied), which detaches its
 * ArrayBuffer: a view of a larger one, such as Node's shared Buffer pool
 * (Buffer.from, small Buffer.allocUnsafe), would take the rest of that
 * buffer with it (Node 20 copies an untransferable pool whole instead; later
 * versions refuse it). The encoder makes bodies that own theirs; this keeps
 * any other from ever being moved.
 */
export function ownedBody(body: Uint8Array, bodies?: BodyPool): Uint8Array {
  if (body.byteOffset !== 0 || !(body.buffer instanceof ArrayBuffer)) return new Uint8Array(body)
  return body.byteLength === body.buffer.byteLength || bodies?.owns(body.buffer) ? body : new Uint8Array(body)
}

/** What the queue hands to a worker: span records, or an encoded OTLP/protobuf request. */
export type Batch =
  | { kind: 'records'; spans: FinishedSpan[] }
  /**
   * `attempt`: how many times this body was sent already (0 for a new one);
   * `retryAfterMs`: on the way back from a failure, the collector's Retry-After.
   */
  | { kind: 'encoded'; body: Uint8Array; count: number; attempt: number; retryAfterMs?: number }

export interface ExportPoolOptions {
  config: ExportConfig
  scope: { name: string; version: string }
  stats: ExportStats
  logger: Logger
  /** Called whenever a worker can take more work. */
  onCapacity?: () => void
  /**
   * Send from the calling thread (one runner, `numWorkers` ignored) instead
   * of worker threads: for a thread that already runs off HAProxy's path.
   */
  inThread?: boolean
}

interface Slot {
  index: number
  worker: ExportWorker | null
  ready: boolean
  /** batch id -> span count and send attempt */
  readonly inflight: Map<number, { n: number; attempt: number }>
  inflightSpans: number
  backoffMs: number
  restartTimer: NodeJS.Timeout | null
  closed: (() => void) | null
}

export class ExportPool {
  private readonly opts: ExportPoolOptions
  private readonly slots: Slot[] = []
  private readonly limiter = new LogLimiter()
  private nextBatch = 1
  private stopping = false
  onCapacity: () => void
  /**
   * An encoded batch failed for a retryable reason and came back: the queue
   * decides whether to send it again, and counts it if not. Without a taker
   * it is dropped (export_failed).
   */
  onRetry: ((batch: Batch & { kind: 'encoded' }) => RetryOutcome) | null = null
  /** An export succeeded: the collector answers, so batches waiting out a backoff need not wait any longer. */
  onSuccess: () => void = () => {}
  readonly health: ExportHealth
  /** Request bodies' memory, going round between the encoder and the workers. */
  readonly bodies = new BodyPool()
  /** Reported by the first worker ready: the SDK's default resource attributes. */
  resourceDefaults: Record<string, string> | undefined

  constructor(opts: ExportPoolOptions) {
    this.opts = opts
    this.onCapacity = opts.onCapacity ?? (() => {})
    this.health = new ExportHealth(opts.stats, opts.logger, exportTarget(opts.config))
    for (let i = 0; i < (opts.inThread === true ? 1 : opts.config.numWorkers); i++) {
      this.slots.push({
        index: i,
        worker: null,
        ready: false,
        inflight: new Map(),
        inflightSpans: 0,
        backoffMs: 100,
        restartTimer: null,
        closed: null,
      })
    }
  }

  /** Starts every worker; resolves when all are ready, rejects if one fails to start in time. */
  async start(timeoutMs = 15_000): Promise<void> {
    await Promise.all(this.slots.map((s) => this.spawn(s, timeoutMs)))
  }

  private async spawn(slot: Slot, timeoutMs: number): Promise<void> {
    const init: WorkerInit = { config: this.opts.config, scope: this.opts.scope }
    let worker: ExportWorker
    if (this.opts.inThread === true) {
      // Loaded only when asked for: it brings OpenTelemetry's SDK into this
      // thread, which export workers otherwise keep out of the main
      // thread's memory (about 25 MB of RSS, in half the runs).
      const { InThreadWorker } = await import('./in-thread-worker.js')
      if (this.stopping) return
      worker = new InThreadWorker(init)
    } else worker = new Worker(WORKER_URL, { workerData: init, name: `export-${slot.index}`, resourceLimits: WORKER_LIMITS })
    slot.worker = worker
    slot.ready = false
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`export worker ${slot.index} not ready after ${timeoutMs} ms`)), timeoutMs)
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          clearTimeout(timer)
          this.resourceDefaults ??= m.resourceDefaults
          slot.ready = true
          slot.backoffMs = 100
          this.opts.stats.workersUp++
          resolve()
          this.onCapacity()
        } else this.onMessage(slot, m)
      })
      worker.on('error', (err) => {
        clearTimeout(timer)
        this.log('worker-error', 'error', { worker: slot.index, err }, 'export worker crashed')
        reject(err)
      })
      worker.on('exit', (code) => this.onExit(slot, worker, code))
    })
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    const stats = this.opts.stats
    switch (m.type) {
      case 'result': {
        const sent = slot.inflight.get(m.id)
        const n = sent?.n ?? 0
        slot.inflight.delete(m.id)
        slot.inflightSpans -= n
        stats.inFlight -= n
        stats.exportMs.observe(m.ms)
        if (m.ms > stats.exportMsMax) stats.exportMsMax = m.ms
        if (m.warning !== undefined) this.log('partial-success', 'warn', { target: exportTarget(this.opts.config), spans: n }, `export: ${m.warning}`)
        // A body that will not be sent again goes back to be written over.
        if (m.body !== undefined) {
          if (m.retryable === true && !m.ok) this.bodies.adopt(m.body.buffer as ArrayBuffer)
          else this.bodies.give(m.body.buffer as ArrayBuffer)
        }
        if (m.ok) {
          stats.spansExported += n
          stats.batchesExported++
          this.health.succeeded()
          this.onSuccess()
        } else {
          stats.batchesFailed++
          const retry = m.retryable === true ? m.body : undefined
          this.health.failed(m.error ?? 'unknown error', n, () => {
            if (retry !== undefined && this.onRetry !== null) {
              const b: Batch & { kind: 'encoded' } = { kind: 'encoded', body: retry, count: n, attempt: (sent?.attempt ?? 0) + 1 }
              if (m.retryAfterMs !== undefined) b.retryAfterMs = m.retryAfterMs
              return this.onRetry(b)
            }
            bump(stats.spansDropped, this.stopping ? 'shutdown' : 'export_failed', n)
            return { kind: 'dropped', why: this.stopping ? 'shutting down' : retry === undefined ? 'not retryable' : 'no retry queue' }
          })
        }
        this.onCapacity()
        return
      }
      case 'log':
        this.log(`otel-${m.level}`, m.level, { worker: slot.index }, `exporter: ${m.msg}`)
        return
      case 'closed':
        slot.closed?.()
        return
      case 'ready':
        return
    }
  }

  private onExit(slot: Slot, worker: ExportWorker, code: number): void {
    if (slot.worker !== worker) return
    const stats = this.opts.stats
    if (slot.ready) stats.workersUp--
    slot.ready = false
    slot.worker = null
    const lost = slot.inflightSpans
    if (lost > 0) {
      bump(stats.spansDropped, 'worker_crash', lost)
      stats.inFlight -= lost
    }
    slot.inflight.clear()
    slot.inflightSpans = 0
    slot.closed?.()
    if (this.stopping) return
    stats.workerRestarts++
    this.log('worker-exit', 'error', { worker: slot.index, code, lostSpans: lost, restartInMs: slot.backoffMs }, 'export worker exited; restarting')
    const delay = slot.backoffMs
    slot.backoffMs = Math.min(slot.backoffMs * 2, 5000)
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null
      if (!this.stopping) this.spawn(slot, 15_000).catch(() => {})
    }, delay)
  }

  /** Spans a worker holds and has not acknowledged. */
  get inFlight(): number {
    return this.opts.stats.inFlight
  }

  private pick(): Slot | null {
    let best: Slot | null = null
    for (const s of this.slots) {
      if (!s.ready || s.inflight.size >= this.opts.config.maxConcurrentExports) continue
      if (best === null || s.inflightSpans < best.inflightSpans) best = s
    }
    return best
  }

  /** Whether a worker can take a batch now. */
  canTake(): boolean {
    return this.pick() !== null
  }

  /** Hands a batch to the least busy ready worker; false if none can take it now. */
  dispatch(batch: Batch): boolean {
    const best = this.pick()
    if (best === null) return false
    const id = this.nextBatch++
    const n = batch.kind === 'records' ? batch.spans.length : batch.count
    best.inflight.set(id, { n, attempt: batch.kind === 'encoded' ? batch.attempt : 0 })
    best.inflightSpans += n
    this.opts.stats.inFlight += n
    if (batch.kind === 'records') {
      best.worker!.postMessage({ type: 'export', id, spans: batch.spans } satisfies ToWorker)
    } else {
      const body = ownedBody(batch.body, this.bodies)
      const msg: ToWorker = { type: 'export-encoded', id, body, count: batch.count }
      best.worker!.postMessage(msg, [body.buffer as ArrayBuffer])
    }
    return true
  }

  /** Fault injection for tests: makes worker `index` throw. */
  crash(index: number): void {
    this.slots[index]?.worker?.postMessage({ type: 'crash' } satisfies ToWorker)
  }

  /**
   * Lets each worker finish its in-flight exports and shut its exporter down,
   * within `deadlineMs`; then terminates whatever is left. Spans still in
   * flight at the deadline are counted as dropped (shutdown).
   */
  async shutdown(deadlineMs: number): Promise<void> {
    this.stopping = true
    const waits = this.slots.map((slot) => {
      if (slot.restartTimer) clearTimeout(slot.restartTimer)
      const w = slot.worker
      if (w === null) return Promise.resolve()
      const closed = new Promise<void>((resolve) => (slot.closed = resolve))
      w.postMessage({ type: 'shutdown' } satisfies ToWorker)
      return closed
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(waits), new Promise((r) => (timer = setTimeout(r, deadlineMs)))])
    clearTimeout(timer)
    const stats = this.opts.stats
    const ending: Array<Promise<number>> = []
    for (const slot of this.slots) {
      if (slot.inflightSpans > 0) {
        bump(stats.spansDropped, 'shutdown', slot.inflightSpans)
        stats.inFlight -= slot.inflightSpans
        slot.inflightSpans = 0
        slot.inflight.clear()
      }
      const w = slot.worker
      slot.worker = null
      if (slot.ready) stats.workersUp--
      slot.ready = false
      // All at once: each takes tens of milliseconds to tear down.
      if (w) ending.push(w.terminate())
    }
    await Promise.all(ending)
  }

  private log(key: string, level: 'warn' | 'error', obj: object, msg: string): void {
    const suppressed = this.limiter.allow(key)
    if (suppressed < 0) return
    this.opts.logger[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }
}

/** Where spans go, for log lines: the OTLP endpoint with its credentials masked, the file, or the exporter. */
export function exportTarget(c: ExportConfig): string {
  return c.exporter === 'otlp' ? redactUrl(c.endpoint) : c.exporter === 'file' ? c.file : c.exporter
}
