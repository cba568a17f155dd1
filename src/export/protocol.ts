// Messages between the main thread and the export workers. Plain data only:
// they cross the thread boundary by structured clone.

import type { FinishedSpan } from '../tracing/types.js'
import type { ExportConfig } from './config.js'

export interface WorkerInit {
  config: ExportConfig
  scope: { name: string; version: string }
}

export type ToWorker =
  | { type: 'export'; id: number; spans: FinishedSpan[] }
  /** An OTLP request body (encoded on the main thread, or handed back for a retry), transferred (not copied). */
  | { type: 'export-encoded'; id: number; body: Uint8Array; count: number }
  | { type: 'shutdown' }
  /** Fault injection for the restart tests: the worker throws from its message handler. */
  | { type: 'crash' }

export type FromWorker =
  /** `resourceDefaults`: the SDK's telemetry.sdk.* resource attributes, for encoding on the main thread. */
  | { type: 'ready'; resourceDefaults: Record<string, string> }
  /**
   * One export attempt, the moment it ended. `body`: the OTLP request body
   * the main thread encoded, handed back (transferred): to be sent again when
   * `retryable` (network error, timeout, 429/502/503/504, with the
   * collector's Retry-After if it gave one), else for its memory to carry the
   * next batch. A body the worker encoded itself (http/json) comes back only
   * to be retried. `warning`: a success that still rejected spans (partial
   * success).
   */
  | {
      type: 'result'
      id: number
      ok: boolean
      error?: string
      ms: number
      body?: Uint8Array
      retryable?: boolean
      retryAfterMs?: number
      warning?: string
    }
  | { type: 'log'; level: 'warn' | 'error'; msg: string }
  | { type: 'closed' }
