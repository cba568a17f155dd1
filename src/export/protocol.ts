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
  | { type: 'shutdown' }
  /** Fault injection for the restart tests: the worker throws from its message handler. */
  | { type: 'crash' }

export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; id: number; ok: boolean; error?: string; ms: number }
  | { type: 'log'; level: 'warn' | 'error'; msg: string }
  | { type: 'closed' }
