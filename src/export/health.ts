// Whether exports get through, said when it changes. The first failed
// attempt of an outage is logged at once; later ones at most once per
// interval, saying how many were not logged; the recovery once, with how long
// the outage lasted and how many spans it cost. It keeps
// ExportStats.failingSince, from which /readyz counts its threshold.
// Called by the pool for every attempt's result; never on the ACK path.

import type { Logger } from 'pino'
import { LogLimiter } from '../util/log-limiter.js'
import type { ExportStats } from './stats.js'

/** What became of the spans of a failed attempt. */
export type RetryOutcome = { kind: 'retry'; inMs: number } | { kind: 'dropped'; why: string }

const sum = (m: Map<string, number>): number => {
  let n = 0
  for (const v of m.values()) n += v
  return n
}

const secs = (ms: number): number => Math.round(ms / 100) / 10

export class ExportHealth {
  private readonly limiter: LogLimiter
  /** Failed attempts in the current outage. */
  private failures = 0
  /** Export-side drops counted when the outage began. */
  private droppedBefore = 0
  private lastError = ''

  constructor(
    private readonly stats: ExportStats,
    private readonly logger: Logger,
    /** Where spans go, for the log lines: the endpoint (credentials masked) or the file. */
    private readonly target: string,
    private readonly now: () => number = Date.now,
    intervalMs = 10_000,
  ) {
    this.limiter = new LogLimiter(intervalMs, now)
  }

  /** The error of the latest failed attempt of the current outage ('' when healthy). */
  get error(): string {
    return this.stats.failingSince > 0 ? this.lastError : ''
  }

  /**
   * An attempt failed. `decide` settles what becomes of its spans (a retry,
   * or a drop it counts); it runs after the outage has started, so the drop
   * is the outage's.
   */
  failed(error: string, spans: number, decide: () => RetryOutcome): void {
    const first = this.stats.failingSince === 0
    if (first) {
      this.stats.failingSince = this.now()
      this.failures = 0
      this.droppedBefore = sum(this.stats.spansDropped)
    }
    this.failures++
    this.lastError = error
    const outcome = decide()
    // The first failure of an outage always; then the limiter's pace.
    const suppressed = first ? 0 : this.limiter.allow('export-failed')
    if (first) this.limiter.allow('export-failed')
    if (suppressed < 0) return
    const fields: Record<string, unknown> = { target: this.target, error, spans }
    if (!first) fields.failingForS = secs(this.now() - this.stats.failingSince)
    if (suppressed > 0) fields.suppressed = suppressed
    if (outcome.kind === 'retry') {
      fields.retryInS = secs(outcome.inMs)
      this.logger.warn(fields, first ? 'export failed; the batch is kept and sent again' : 'export still failing; the batch is kept and sent again')
    } else {
      fields.dropped = outcome.why
      this.logger.warn(fields, first ? 'export failed; spans dropped' : 'export still failing; spans dropped')
    }
  }

  /** An attempt succeeded: ends an outage, if one was running, with one line. */
  succeeded(): void {
    const since = this.stats.failingSince
    if (since === 0) return
    this.stats.failingSince = 0
    const outageMs = this.now() - since
    const dropped = sum(this.stats.spansDropped) - this.droppedBefore
    this.logger.info(
      { target: this.target, outageS: secs(outageMs), failedAttempts: this.failures, droppedSpans: dropped, lastError: this.lastError },
      `export recovered after ${secs(outageMs)} s; ${dropped} span(s) dropped meanwhile`,
    )
    this.failures = 0
    this.lastError = ''
  }
}
