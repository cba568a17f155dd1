// What the metrics endpoint reads: the stats objects each layer already
// keeps, plus the few facts /readyz needs. An interface rather than the
// Daemon so the endpoint can start before the daemon object exists (a probe
// sees 503 until the SPOP listener is up) and can be tested on its own.

import type { AgentStats } from '../agent/index.js'
import type { ExportStats } from '../export/stats.js'
import type { LogIntakeStats } from '../intake/log/stats.js'
import type { TracingStats } from '../tracing/stats.js'

export interface MetricsSource {
  /** The agent's version (spoa_tracer_info), given by the daemon that owns the package facts. */
  readonly version: string
  readonly agent: { readonly stats: AgentStats; readonly listening: boolean }
  readonly store: { readonly size: number; readonly stats: TracingStats }
  readonly exportStats: ExportStats
  /** config.export.maxQueueSize: spans queued or in flight at most. */
  readonly queueCapacity: number
  /** False with `--exporter none`: no worker to wait for, no collector to fail. */
  readonly exporting: boolean
  /** /readyz turns 503 once exports have failed without a success for longer than this. */
  readonly readyExportFailureThresholdMs: number
  /** Restarts of this agent's process by its supervisor (src/daemon/supervisor.ts) before this one; 0 when not supervised. */
  readonly agentRestarts?: number
  /** The log intake (--log-intake), when on. */
  readonly logIntake?: { readonly stats: LogIntakeStats; kernelDrops(): number } | null
  /** True from the moment daemon.close() starts. */
  shuttingDown(): boolean
}
