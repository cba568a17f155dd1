import { EXPORT_MS_BOUNDS, Histogram } from '../util/histogram.js'

// Counters of the export side: what was queued, sent, exported, dropped
// (by reason) and how long exports took. Read by /metrics and the stats line.

export class ExportStats {
  spansQueued = 0
  spansExported = 0
  /** Spans that never reached the backend, by reason (queue_full, export_failed, worker_crash, shutdown). */
  readonly spansDropped = new Map<string, number>()
  batchesExported = 0
  /** Export requests that failed: each attempt, counted when it fails. */
  batchesFailed = 0
  /** Duration of each export request (one attempt), milliseconds. */
  readonly exportMs = new Histogram(EXPORT_MS_BOUNDS)
  exportMsMax = 0

  get exportMsSum(): number {
    return this.exportMs.sum
  }
  workerRestarts = 0
  workersUp = 0
  /** Spans waiting in the queue (set by the queue). */
  queueDepth = 0
  /** Spans handed to workers and not yet acknowledged (set by the pool). */
  inFlight = 0
  /** Unix time (ms) of the first failed attempt of the current outage; 0 when the last one succeeded (health.ts). */
  failingSince = 0
}
