// The periodic statistics line (-i/--monitor-interval): the key figures of
// every layer in one log line, with rates over the last interval. The same
// key figures as /metrics (src/metrics/registry.ts), for those who read logs;
// the log intake's only when it is on.

import type { Logger } from 'pino'
import type { Daemon } from './main.js'
import { HistogramWindow } from '../metrics/window.js'

export interface Snapshot {
  connections: number
  connectionsTotal: number
  notify: number
  acks: number
  protocolErrors: number
  handlerErrors: number
  openTrees: number
  openSpans: number
  spansStarted: number
  spansExported: number
  spansDropped: number
  messagesRejected: number
  treesReaped: number
  queueDepth: number
  queueCapacity: number
  inFlight: number
  exportFailures: number
  workersUp: number
  rssMb: number
}

const sum = (m: Map<unknown, number>): number => {
  let n = 0
  for (const v of m.values()) n += v
  return n
}

export function snapshot(d: Daemon): Snapshot {
  const a = d.agent.stats
  const t = d.trees.stats
  const e = d.exportStats
  return {
    connections: a.connectionsOpen,
    connectionsTotal: a.connectionsTotal,
    notify: a.notifyReceived,
    acks: a.acksSent,
    protocolErrors: sum(a.protocolErrors),
    handlerErrors: a.handlerErrors,
    openTrees: d.trees.size,
    openSpans: t.openSpans,
    spansStarted: t.spansStarted,
    spansExported: e.spansExported,
    spansDropped: sum(e.spansDropped) + sum(t.spansDropped),
    messagesRejected: sum(t.messagesRejected),
    treesReaped: t.treesReaped,
    queueDepth: e.queueDepth,
    queueCapacity: d.config.export.maxQueueSize,
    inFlight: e.inFlight,
    exportFailures: e.batchesFailed,
    workersUp: e.workersUp,
    rssMb: Math.round(process.memoryUsage.rss() / 1048576),
  }
}

/** Logs a statistics line every `intervalMs`; returns a function that stops it. */
export function startMonitor(d: Daemon, logger: Logger, intervalMs: number): () => void {
  let prev = snapshot(d)
  let prevAt = Date.now()
  const ackLatency = new HistogramWindow(d.agent.stats.ackLatencyUs)
  let prevLogRecords = d.logIntake?.stats.records ?? 0
  const timer = setInterval(() => {
    const now = Date.now()
    const cur = snapshot(d)
    const secs = (now - prevAt) / 1000
    const rate = (k: keyof Snapshot) => Math.round((cur[k] - prev[k]) / secs)
    // Bucket upper bounds over this interval: an estimate, as the /metrics histogram gives.
    const [ackP50Us, ackP99Us] = ackLatency.next([0.5, 0.99])
    // The log intake's figures, only when it is on (--log-intake).
    const l = d.logIntake?.stats
    const log =
      l === undefined
        ? {}
        : {
            logRecordsPerSec: Math.round((l.records - prevLogRecords) / secs),
            logRecordsTraced: l.traced,
            logRecordsUntraced: l.untraced,
            logRecordsRejected: sum(l.rejected),
            logRecordsDropped: l.haproxyDropped + d.logIntake!.kernelDrops(),
          }
    if (l !== undefined) prevLogRecords = l.records
    logger.info(
      { ...cur, notifyPerSec: rate('notify'), ackP50Us, ackP99Us, spansExportedPerSec: rate('spansExported'), ...log },
      'statistics',
    )
    prev = cur
    prevAt = now
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
