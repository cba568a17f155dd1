// /readyz: is this agent fit to receive traffic? The listener is up, an
// export worker can take spans (unless nothing is exported), the collector
// has not been failing for longer than the threshold, and no shutdown has
// started. Pure over a MetricsSource and a clock, so each check is testable.

import type { MetricsSource } from './source.js'

export interface Readiness {
  ready: boolean
  /** One short phrase per failed check; empty when ready. */
  failed: string[]
}

const secs = (ms: number): string => `${Math.round(ms / 100) / 10}s`

export function readiness(s: MetricsSource, now = Date.now()): Readiness {
  const failed: string[] = []
  if (s.shuttingDown()) failed.push('shutting down')
  if (!s.agent.listening) failed.push('SPOP listener not listening')
  if (s.exporting) {
    const e = s.exportStats
    if (e.workersUp < 1) failed.push('no export worker up')
    const failingFor = e.failingSince > 0 ? now - e.failingSince : 0
    if (e.failingSince > 0 && failingFor > s.readyExportFailureThresholdMs) {
      failed.push(`export failing for ${secs(failingFor)} (threshold ${secs(s.readyExportFailureThresholdMs)})`)
    }
  }
  return { ready: failed.length === 0, failed }
}

/** How long exports have been failing without a success, ms (0 when the last one succeeded). */
export function exportFailingMs(s: MetricsSource, now = Date.now()): number {
  const since = s.exportStats.failingSince
  return since > 0 ? Math.max(0, now - since) : 0
}
