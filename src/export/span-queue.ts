// The bounded queue between span trees and the export workers: the SpanSink
// the trace store hands completed trees to. It never blocks and never holds
// more than maxQueueSize spans (waiting, being encoded, or in flight): beyond
// that, whole trees are dropped and counted, because HAProxy must never wait
// on export. Batches leave when maxBatchSize spans are ready or after
// scheduledDelayMs.
//
// Two ways to batch. For OTLP http/protobuf (the default) completed trees are
// encoded into the request body on this thread, in a setImmediate pass after
// the current socket reads (so never before an ACK is written), and the bytes
// are transferred to a worker without a copy: encoding costs less than
// cloning span objects across threads did, and the worker is left with HTTP.
// For the other exporters, span records cross as they are and the worker
// converts them.
//
// Retries are decided here, for every exporter: a batch whose export failed
// for a retryable reason comes back as its encoded request body and waits
// its backoff (or the collector's Retry-After) within the queue bound, or
// less: as soon as any export succeeds, the waiting batches go, and while
// nothing else is being sent one of them goes at least every PROBE_MS to
// find out. During a shutdown nothing is retried: what fails then is
// dropped and counted.

import type { Logger } from 'pino'
import type { FinishedSpan, SpanSink } from '../tracing/types.js'
import { bump } from '../util/counters.js'
import { LogLimiter } from '../util/log-limiter.js'
import type { BodyPool } from './body-pool.js'
import type { ExportConfig } from './config.js'
import { OtlpBatchBuilder } from './otlp-protobuf.js'
import type { RetryOutcome } from './health.js'
import type { Batch, ExportPool } from './pool.js'
import type { ExportStats } from './stats.js'

/** Turns added trees into batches of at most maxBatchSize spans. */
interface Batcher {
  /** Spans added and not yet taken. */
  readonly size: number
  add(spans: FinishedSpan[]): void
  /** Up to maxBatchSize spans as one batch; null if none is ready. */
  take(max: number): Batch | null
}

/** Attempts of one batch at most, and the backoff between them (doubling from 1 s to 30 s). */
const MAX_ATTEMPTS = 10
const backoffMs = (attempt: number): number => Math.min(30_000, 1000 * 2 ** (attempt - 1))
/**
 * While batches wait out their backoff and nothing is in flight, the first
 * of them goes at least this often, so that a collector that is back is
 * noticed within it even when no new batch comes to find out. None comes
 * when traffic stops, nor under --cpu-sched tracing-idle, whose tracing
 * thread holds new trees while this queue is over half full: there, after a
 * 20 s outage, export resumed 11.5 s after the collector was back (waiting
 * out a backoff), and a longer one would have filled the main thread's
 * hand-over bound meanwhile. A probe does not count against the batch's
 * attempts; a batch the collector asked to wait (Retry-After) is not sent
 * early.
 */
const PROBE_MS = 2000

class RecordBatcher implements Batcher {
  private pending: FinishedSpan[] = []
  /** Where each added tree ends in `pending`: batches end on a tree's end. */
  private ends: number[] = []

  get size(): number {
    return this.pending.length
  }

  add(spans: FinishedSpan[]): void {
    for (let i = 0; i < spans.length; i++) this.pending.push(spans[i]!)
    this.ends.push(this.pending.length)
  }

  take(max: number): Batch | null {
    if (this.pending.length === 0) return null
    // Trees are never split (the console prints each whole): a batch may exceed max by less than one tree.
    let k = 0
    while (this.ends[k]! < max && k < this.ends.length - 1) k++
    const n = this.ends[k]!
    const spans = n === this.pending.length ? this.pending : this.pending.slice(0, n)
    this.pending = spans === this.pending ? [] : this.pending.slice(n)
    this.ends = this.ends.slice(k + 1).map((e) => e - n)
    return { kind: 'records', spans }
  }
}

class ProtobufBatcher implements Batcher {
  private readonly builder: OtlpBatchBuilder
  /** Sealed requests, in order. */
  private readonly sealed: Array<{ body: Uint8Array; count: number }> = []
  private sealedSpans = 0

  constructor(
    config: ExportConfig,
    defaults: Record<string, string>,
    scope: { name: string; version: string },
    private readonly maxBatch: number,
    bodies: BodyPool,
  ) {
    this.builder = new OtlpBatchBuilder({ resource: config.resource, defaults, scope, alloc: (size) => bodies.take(size) })
  }

  get size(): number {
    return this.sealedSpans + this.builder.spans
  }

  add(spans: FinishedSpan[]): void {
    this.builder.add(spans)
    // Trees are never split: a batch may exceed maxBatchSize by less than one tree.
    if (this.builder.spans >= this.maxBatch) this.seal()
  }

  private seal(): void {
    const count = this.builder.spans
    const body = this.builder.take()
    if (body === null) return
    this.sealed.push({ body, count })
    this.sealedSpans += count
  }

  take(): Batch | null {
    if (this.sealed.length === 0) this.seal()
    const b = this.sealed.shift()
    if (b === undefined) return null
    this.sealedSpans -= b.count
    return { kind: 'encoded', body: b.body, count: b.count, attempt: 0 }
  }
}

export class SpanQueue implements SpanSink {
  private batcher: Batcher | null = null
  /** Trees accepted and not yet handed to the batcher (the encode pass runs in setImmediate). */
  private incoming: FinishedSpan[][] = []
  private incomingSpans = 0
  private immediate: NodeJS.Immediate | null = null
  private timer: NodeJS.Timeout | null = null
  /** The delay expired while no worker could take the batch: send it at the next chance. */
  private overdue = false
  private readonly limiter = new LogLimiter()

  /** Requests that failed for a retryable reason, oldest first, each with the time it may go again. */
  private readonly retries: Array<{ body: Uint8Array; count: number; attempt: number; due: number; retryAfter: boolean }> = []
  private retrySpans = 0
  private retryTimer: NodeJS.Timeout | null = null
  /** Set by drain(): a shutdown retries nothing. */
  private draining = false

  constructor(
    private readonly pool: ExportPool | null,
    private readonly config: ExportConfig,
    private readonly stats: ExportStats,
    private readonly logger: Logger,
    private readonly scope: { name: string; version: string } = { name: 'spoa-tracer', version: '' },
    /** For tests: how often a waiting batch probes the collector. */
    private readonly probeMs = PROBE_MS,
  ) {
    if (pool) {
      pool.onCapacity = () => this.onCapacity()
      pool.onRetry = (b) => this.retry(b)
      pool.onSuccess = () => this.retryNow()
    }
  }

  /**
   * A batch came back from a retryable failure (collector down, slow,
   * 429/503): it waits its backoff, or the collector's Retry-After, and goes
   * again if it has attempts left and the queue bound allows it (it counts as
   * held again). Otherwise, or during a shutdown, it is dropped and counted.
   */
  private retry(b: Batch & { kind: 'encoded' }): RetryOutcome {
    if (this.draining) {
      bump(this.stats.spansDropped, 'shutdown', b.count)
      return { kind: 'dropped', why: 'shutting down' }
    }
    if (b.attempt >= MAX_ATTEMPTS) {
      bump(this.stats.spansDropped, 'export_failed', b.count)
      return { kind: 'dropped', why: `failed ${b.attempt} times` }
    }
    if (this.held + this.stats.inFlight + b.count > this.config.maxQueueSize) {
      bump(this.stats.spansDropped, 'export_failed', b.count)
      return { kind: 'dropped', why: 'no room in the export queue to keep it' }
    }
    const inMs = b.retryAfterMs !== undefined ? Math.max(100, b.retryAfterMs) : backoffMs(b.attempt)
    this.retries.push({ body: b.body, count: b.count, attempt: b.attempt, due: Date.now() + inMs, retryAfter: b.retryAfterMs !== undefined })
    this.retrySpans += b.count
    this.stats.queueDepth = this.held
    this.armRetryTimer()
    return { kind: 'retry', inMs }
  }

  /**
   * The collector accepted a batch: the batches kept for a retry go now
   * instead of waiting out their backoff (up to 30 s), which after an outage
   * would keep the queue full and drop new trees that could have been sent.
   * They still go only as fast as the workers take them.
   */
  private retryNow(): void {
    if (this.retries.length === 0 || this.draining) return
    const now = Date.now()
    for (const r of this.retries) r.due = Math.min(r.due, now)
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.send(false)
    this.armRetryTimer()
  }

  private armRetryTimer(): void {
    if (this.retryTimer !== null || this.retries.length === 0 || this.draining) return
    let next = this.retries[0]!.due
    if (this.retries.some((r) => !r.retryAfter)) next = Math.min(next, Date.now() + this.probeMs)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.probe()
      this.send(true)
      this.armRetryTimer()
    }, Math.max(0, next - Date.now()))
    this.retryTimer.unref()
  }

  /** With nothing in flight to tell whether the collector is back, the first batch waiting out a backoff goes now (PROBE_MS). */
  private probe(): void {
    const first = this.retries[0]
    if (first === undefined || this.stats.inFlight > 0) return // sent meanwhile, or one under way will tell
    const now = Date.now()
    if (first.due <= now) return // one goes anyway
    const i = this.retries.findIndex((r) => !r.retryAfter)
    if (i < 0) return
    const r = this.retries.splice(i, 1)[0]!
    // Sent with the attempts it had before its last failure: if this one
    // fails too, it comes back with the same count and the same backoff.
    r.attempt--
    r.due = now
    this.retries.unshift(r)
  }

  /** Spans held here: incoming, batched, sealed, waiting for a retry (not in flight). */
  private get held(): number {
    return this.incomingSpans + (this.batcher?.size ?? 0) + this.retrySpans
  }

  push(spans: FinishedSpan[]): void {
    if (this.pool === null) return // exporter "none": tracing runs, nothing leaves
    const n = spans.length
    if (this.held + this.stats.inFlight + n > this.config.maxQueueSize) {
      bump(this.stats.spansDropped, 'queue_full', n)
      const suppressed = this.limiter.allow('queue_full')
      if (suppressed >= 0) {
        this.logger.warn(
          { maxQueueSize: this.config.maxQueueSize, inFlight: this.stats.inFlight, ...(suppressed ? { suppressed } : {}) },
          'export queue full: spans dropped (is the collector slow or down?)',
        )
      }
      return
    }
    this.incoming.push(spans)
    this.incomingSpans += n
    this.stats.spansQueued += n
    this.stats.queueDepth = this.held
    this.immediate ??= setImmediate(this.process)
  }

  /** Moves incoming trees into batches and sends what is due. Runs after the current I/O callbacks. */
  private readonly process = (): void => {
    this.immediate = null
    const batcher = this.getBatcher()
    if (batcher === null) return // workers not ready yet: trees wait in `incoming` (bounded)
    for (const tree of this.incoming) batcher.add(tree)
    this.incoming = []
    this.incomingSpans = 0
    this.send(this.overdue)
    if (batcher.size > 0 && this.timer === null && !this.overdue) {
      this.timer = setTimeout(this.onTimer, this.config.scheduledDelayMs).unref()
    }
    this.stats.queueDepth = this.held
  }

  private getBatcher(): Batcher | null {
    if (this.batcher !== null) return this.batcher
    const c = this.config
    if (c.exporter === 'otlp' && c.protocol === 'http/protobuf') {
      // The resource carries the SDK's telemetry.sdk.* attributes, which the workers report.
      const defaults = this.pool?.resourceDefaults
      if (defaults === undefined || this.pool === null) return null
      this.batcher = new ProtobufBatcher(c, defaults, this.scope, c.maxBatchSize, this.pool.bodies)
    } else {
      this.batcher = new RecordBatcher()
    }
    return this.batcher
  }

  private readonly onTimer = (): void => {
    this.timer = null
    this.overdue = true
    this.send(true)
  }

  private onCapacity(): void {
    if (this.incomingSpans > 0) this.immediate ??= setImmediate(this.process)
    else this.send(this.overdue)
  }

  /**
   * Sends retries that are due (all of them when `force`), then full batches,
   * and partial ones too when `all`; stops when no worker can take more.
   */
  private send(all: boolean, force = false): void {
    const pool = this.pool
    const batcher = this.batcher
    if (pool === null || batcher === null) return
    const max = this.config.maxBatchSize
    while (pool.canTake()) {
      const r = this.retries[0]
      if (r !== undefined && (force || r.due <= Date.now())) {
        this.retries.shift()
        this.retrySpans -= r.count
        pool.dispatch({ kind: 'encoded', body: r.body, count: r.count, attempt: r.attempt })
        continue
      }
      if (!(batcher.size >= max || (all && batcher.size > 0))) break
      const batch = batcher.take(max)
      if (batch === null) break
      pool.dispatch(batch)
    }
    if (batcher.size === 0) this.overdue = false
    this.stats.queueDepth = this.held
    if (batcher.size > 0 && this.timer === null && !this.overdue) {
      this.timer = setTimeout(this.onTimer, this.config.scheduledDelayMs).unref()
    }
  }

  /**
   * Sends everything now, retries included (there is no later), and waits
   * (bounded) until the workers acknowledged it all. For shutdown: a batch
   * that fails meanwhile, and whatever is still held at the deadline, is
   * counted as dropped (shutdown).
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.overdue = true
    const end = Date.now() + deadlineMs
    while ((this.held > 0 || this.stats.inFlight > 0) && Date.now() < end) {
      if (this.incomingSpans > 0) this.process()
      else if (this.held > 0) this.send(true, true)
      await new Promise((r) => setTimeout(r, 10))
    }
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
    if (this.immediate) clearImmediate(this.immediate)
    this.immediate = null
    const left = this.held
    if (left > 0) {
      bump(this.stats.spansDropped, 'shutdown', left)
      this.incoming = []
      this.incomingSpans = 0
      this.retries.length = 0
      this.retrySpans = 0
      this.batcher = null
      this.stats.queueDepth = 0
    }
  }
}
