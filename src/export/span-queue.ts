// The bounded queue between span trees and the export workers: the SpanSink
// the trace store hands completed trees to. It never blocks and never grows
// past maxQueueSize spans (queued plus in flight): beyond that, whole trees
// are dropped and counted, because HAProxy must never wait on export.
// Batches leave when maxBatchSize spans are waiting or after scheduledDelayMs.

import type { Logger } from 'pino'
import type { FinishedSpan, SpanSink } from '../tracing/types.js'
import { bump } from '../util/counters.js'
import { LogLimiter } from '../util/log-limiter.js'
import type { ExportConfig } from './config.js'
import type { ExportPool } from './pool.js'
import type { ExportStats } from './stats.js'

export class SpanQueue implements SpanSink {
  private pending: FinishedSpan[] = []
  private timer: NodeJS.Timeout | null = null
  /** The delay expired while no worker could take the batch: send it at the next chance. */
  private overdue = false
  private readonly limiter = new LogLimiter()

  constructor(
    private readonly pool: ExportPool | null,
    private readonly config: ExportConfig,
    private readonly stats: ExportStats,
    private readonly logger: Logger,
  ) {
    if (pool) pool.onCapacity = () => this.onCapacity()
  }

  push(spans: FinishedSpan[]): void {
    if (this.pool === null) return // exporter "none": tracing runs, nothing leaves
    const n = spans.length
    if (this.pending.length + this.stats.inFlight + n > this.config.maxQueueSize) {
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
    for (let i = 0; i < n; i++) this.pending.push(spans[i]!)
    this.stats.spansQueued += n
    this.stats.queueDepth = this.pending.length
    if (this.pending.length >= this.config.maxBatchSize) this.send(false)
    else if (this.timer === null) this.timer = setTimeout(this.onTimer, this.config.scheduledDelayMs).unref()
  }

  private readonly onTimer = (): void => {
    this.timer = null
    this.overdue = true
    this.send(true)
  }

  private onCapacity(): void {
    if (this.pending.length >= this.config.maxBatchSize || (this.overdue && this.pending.length > 0)) {
      this.send(this.overdue)
    }
  }

  /** Sends full batches, and the remainder too when `all`; stops when no worker can take more. */
  private send(all: boolean): void {
    const pool = this.pool!
    const max = this.config.maxBatchSize
    while (this.pending.length >= max || (all && this.pending.length > 0)) {
      const batch = this.pending.length <= max ? this.pending : this.pending.slice(0, max)
      if (!pool.dispatch(batch)) break
      this.pending = batch === this.pending ? [] : this.pending.slice(max)
    }
    if (this.pending.length === 0) this.overdue = false
    this.stats.queueDepth = this.pending.length
    if (this.pending.length > 0 && this.timer === null && !this.overdue) {
      this.timer = setTimeout(this.onTimer, this.config.scheduledDelayMs).unref()
    }
  }

  /**
   * Sends everything now and waits (bounded) until the workers acknowledged
   * it all. For shutdown: whatever is still queued at the deadline is counted
   * as dropped (shutdown).
   */
  async drain(deadlineMs: number): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.overdue = true
    const end = Date.now() + deadlineMs
    while ((this.pending.length > 0 || this.stats.inFlight > 0) && Date.now() < end) {
      if (this.pending.length > 0 && this.pool) this.send(true)
      await new Promise((r) => setTimeout(r, 10))
    }
    if (this.pending.length > 0) {
      bump(this.stats.spansDropped, 'shutdown', this.pending.length)
      this.pending = []
      this.stats.queueDepth = 0
    }
  }
}
