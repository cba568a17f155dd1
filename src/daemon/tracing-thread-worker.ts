// The tracing thread (--cpu-sched tracing-idle): the trees and their export,
// off the thread that answers HAProxy. It runs the same tracing core as the
// main thread does otherwise, with its export worker (with -n 0, it sends
// the requests itself), and runs under SCHED_IDLE. NOTIFYs come in batches of the
// bytes the main thread already answered (tracing-thread.ts has the layout);
// each is decoded again here and applied with the time it arrived. A NOTIFY
// that asks for a context (inject=) comes alone and gets its actions back.
// Counters go to the main thread four times a second; log lines as they come.

import { parentPort, workerData } from 'node:worker_threads'
import { pino } from 'pino'
import type { Config } from './config.js'
import { applyIdleToThisThread } from './cpu-sched.js'
import { createTracingCore } from './tracing-core.js'
import { BATCH_HEADER, type FromTracingThread, NO_ENGINE, type ToTracingThread } from './tracing-thread.js'
import { cursor, readMessages } from '../spop/index.js'
import { SystemClock } from '../tracing/clock.js'

if (parentPort === null) throw new Error('the tracing thread started outside a worker thread')
const port = parentPort
const post = (m: FromTracingThread): void => port.postMessage(m)
const init = workerData as { config: Config; level: string; behind: Int32Array; injectDelayMs: number }
const STATS_MS = 250

const logger = pino({ level: init.level, base: undefined, timestamp: false }, { write: (line: string) => post({ type: 'log', line }) })
const clock = new SystemClock()
const core = createTracingCore(init.config, logger, clock, {
  traceBatchDelayMs: 0,
  exportInThread: init.config.export.numWorkers === 0,
  onError: (err) => logger.error({ err }, 'applying a NOTIFY failed: its messages are lost'),
})
const { store, tracing, exportStats } = core

/** Arrival time of the last NOTIFY applied. */
let lastArrivalUs = 0

/** Applies one NOTIFY's bytes; a payload that does not decode (the main thread decoded it once) is a bug: logged. */
function applyFrame(engineId: string | null, payload: Buffer, nowUs: number): ReturnType<typeof tracing.applyNow> {
  lastArrivalUs = nowUs
  try {
    return tracing.applyNow(engineId, readMessages(cursor(payload)), nowUs)
  } catch (err) {
    logger.error({ err }, 'applying a NOTIFY failed: its messages are lost')
    return []
  }
}

/** NOTIFYs applied so far (batched and inject=): the main thread knows its counters include them. */
let applied = 0
const sendStats = (): void =>
  post({ type: 'stats', applied, trees: store.size, tracing: store.stats, exportStats })
// While NOTIFYs wait to be applied, a tree's next event may be among them:
// idleness is measured at the arrival of the last one applied, not now, or a
// tracing thread behind by more than the tree TTL would reap live trees.
const reaper = setInterval(() => core.reap(Atomics.load(init.behind, 0) > 0 ? lastArrivalUs : undefined), 1000)
const statsTimer = setInterval(sendStats, STATS_MS)

type Work = Extract<ToTracingThread, { type: 'batch' | 'inject' }>
/**
 * Handed over and not applied yet, in arrival order; `pos` is how far into
 * the first batch. Why hold them: this thread runs in HAProxy's idle gaps
 * and catches up in bursts, faster than the export sends; applied at once,
 * a burst filled the export queue and it dropped whole trees. While the
 * queue is over half full, NOTIFYs wait here instead (a batch may stop
 * halfway), and their bytes still count against the main thread's bound.
 */
const held: Work[] = []
let pos = 0
let retry: NodeJS.Timeout | null = null
const HELD_RETRY_MS = 5
const queueRoom = (): boolean => exportStats.queueDepth + exportStats.inFlight < init.config.export.maxQueueSize / 2

/** Applies the first held item, or as much of it as the queue has room for (all of it when `force`); true once it is done. */
function applyFirst(force: boolean): boolean {
  const m = held[0]!
  if (m.type === 'inject') {
    // Never waits for room: its ACK does.
    if (init.injectDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, init.injectDelayMs) // tests: a busy tracing thread
    const actions = applyFrame(m.engineId, Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), m.nowUs)
    applied++
    post({ type: 'actions', id: m.id, actions })
    return true
  }
  const buf = Buffer.from(m.buf, 0, m.len)
  while (pos < m.len) {
    if (!force && !queueRoom()) return false
    const len = buf.readUInt32LE(pos)
    const nowUs = buf.readDoubleLE(pos + 4)
    const engine = buf.readUInt16LE(pos + 12)
    const start = pos + BATCH_HEADER
    pos = start + len
    applyFrame(engine === NO_ENGINE ? null : m.engines[engine]!, buf.subarray(start, pos), nowUs)
    applied++
    Atomics.sub(init.behind, 0, BATCH_HEADER + len)
  }
  pos = 0
  return true
}

/** Applies what is held, in order, while the export queue has room (`force`: all of it, at shutdown). */
function pump(force = false): void {
  retry = null
  while (held.length > 0 && applyFirst(force)) held.shift()
  if (held.length > 0) retry ??= setTimeout(pump, HELD_RETRY_MS)
}

port.on('message', (m: ToTracingThread) => {
  if (m.type !== 'close') {
    held.push(m)
    if (retry === null) pump()
    return
  }
  clearInterval(reaper)
  clearInterval(statsTimer)
  if (retry !== null) clearTimeout(retry)
  pump(true)
  void core.finish(m.budgetMs).finally(() => {
    sendStats()
    post({ type: 'closed' })
    port.close()
  })
})

// SCHED_IDLE once the export worker is up, not before: it keeps the normal
// policy (one restarted after a crash inherits this thread's). Its work is
// small, HTTP requests, but on idle CPU the export falls behind when the
// host has none: under SCHED_IDLE export workers starved after bursts, and
// with 64 keep-alive clients a tracing thread that sent its own requests
// (-n 0) went past its 32 MiB bound and dropped 7-10% of the messages, where
// one with an export worker kept every span (docs/BENCHMARKS.md). -n 0 saves
// an isolate's memory and the worker's preemptions of HAProxy.
core.poolReady.then(
  () => {
    try {
      applyIdleToThisThread(init.config.cpuSched)
    } catch (err) {
      post({ type: 'fatal', message: (err as Error).message })
      return
    }
    post({ type: 'ready' })
  },
  (err: unknown) => post({ type: 'fatal', message: (err as Error).message }),
)
