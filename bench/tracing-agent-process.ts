// The real tracing daemon (startDaemon: SPOP agent, trace store, span queue,
// export worker pool) as a child process, for bench/tracing-agent.ts. The
// export configuration comes from the command line, the logger is silent. It
// runs in its own process so that its CPU time is its own: process.cpuUsage()
// covers every thread of the process (main, export workers, V8 and libuv
// helpers), and /proc/self/task/<tid>/stat splits it per thread.
//
// Telling the threads apart: start it with `--require dist/bench/thread-tag.cjs`
// and every worker thread reports its kernel tid on a BroadcastChannel (see
// thread-tag.cts). Then the main thread is tid == pid, the export workers are
// the tagged tids and everything else (V8 GC and compiler helpers, libuv) is
// "other". Without the preload the workers are counted as "other".
//
// Protocol with the parent, one JSON object per stdout line:
//   {"type":"listening","port":N}   once, when the daemon accepts connections;
//   "usage" on stdin (or SIGUSR2) -> {"type":"usage",...} (TracingAgentUsage);
//   "close" on stdin -> daemon.close() (answer in-flight frames, end open
//                       trees, flush the queue, stop the workers), then
//                       {"type":"closed",...} with the final counters, exit 0.
// SIGTERM or SIGINT: the same graceful close, then exit 0 (which lets
// `node --cpu-prof` write its profiles, one per thread); so does stdin
// closing (the parent died: no orphan keeps the port and a core busy).
//
// Usage: node --require dist/bench/thread-tag.cjs dist/bench/tracing-agent-process.js
//          [--host 127.0.0.1] [--port 0 | --unix PATH] [--exporter otlp|none|file|console]
//          [--protocol http/protobuf|http/json] [--endpoint URL] [--workers N]
//          [--batch N] [--queue N] [--delay MS] [--concurrency N] [--clk-tck N]
//          [--log-intake udp://127.0.0.1:PORT]   (the log intake, as --log-intake of the agent)

import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { type Config, DEFAULT_CONFIG, validateConfig } from '../src/daemon/config.js'
import { EXPORTERS, type ExporterKind, type OtlpProtocol, PROTOCOLS } from '../src/export/config.js'
import { parseLogAddress } from '../src/intake/log/index.js'
import { startDaemon } from '../src/daemon/main.js'
import { onStdinCommands, readRss, readThreadCpu } from './child.js'
import { num, parseFlags, str } from './cli-options.js'

export type ThreadRole = 'main' | 'worker' | 'other'

export interface ThreadUsage {
  tid: number
  comm: string
  role: ThreadRole
  /** Node threadId of a worker thread (from the thread-tag preload). */
  threadId?: number
  userUs: number
  systemUs: number
}

export interface TracingAgentUsage {
  type: 'usage' | 'closed'
  /** Time of the sample, performance.now() of the child, ms. */
  atMs: number
  /** CPU time of the whole process (all threads, including exited ones), microseconds. */
  userUs: number
  systemUs: number
  /** Live threads, /proc/self/task (10 ms resolution). */
  threads: ThreadUsage[]
  rssBytes: number
  /** VmHWM: the largest RSS of the process so far. */
  peakRssBytes: number
  heapUsedBytes: number
  /** Main-thread event loop, cumulative (performance.eventLoopUtilization()), ms. */
  elu: { idle: number; active: number }
  agent: {
    notifyReceived: number
    messagesReceived: number
    acksSent: number
    connectionsOpen: number
    protocolErrors: number
    handlerErrors: number
  }
  tracing: {
    messages: number
    treesStarted: number
    treesCompleted: number
    treesReaped: number
    treesEndedAtShutdown: number
    /** Trees open now. */
    treesOpen: number
    spansStarted: number
    spansFinished: number
    openSpans: number
    spansDropped: Record<string, number>
    messagesRejected: Record<string, number>
    argumentErrors: Record<string, number>
  }
  /** The log intake's counters, when it is on. */
  logIntake: {
    records: number
    traced: number
    untraced: number
    sampledOut: number
    rejected: Record<string, number>
    haproxyDropped: number
    kernelDrops: number
  } | null
  export: {
    spansQueued: number
    spansExported: number
    spansDropped: Record<string, number>
    batchesExported: number
    batchesFailed: number
    exportMsSum: number
    exportMsMax: number
    queueDepth: number
    inFlight: number
    workersUp: number
    workerRestarts: number
  }
}

/** The same name in thread-tag.cts. */
const THREAD_TAG_CHANNEL = 'spoa-tracer-bench-thread-tag'

const flags = parseFlags(process.argv.slice(2), {
  host: { kind: 'string', help: 'address to listen on' },
  port: { kind: 'number', help: 'port (0: any free one)' },
  unix: { kind: 'string', help: 'listen on this unix socket instead' },
  exporter: { kind: 'string', help: `${EXPORTERS.join('|')}` },
  protocol: { kind: 'string', help: `${PROTOCOLS.join('|')}` },
  endpoint: { kind: 'string', help: 'OTLP traces URL' },
  file: { kind: 'string', help: 'output of the file exporter' },
  workers: { kind: 'number', help: 'export worker threads' },
  batch: { kind: 'number', help: 'max spans per export batch' },
  queue: { kind: 'number', help: 'max spans queued or in flight' },
  delay: { kind: 'number', help: 'scheduled delay of a partial batch, ms' },
  concurrency: { kind: 'number', help: 'exports in flight per worker' },
  'clk-tck': { kind: 'number', help: 'USER_HZ (getconf CLK_TCK)' },
  'log-intake': { kind: 'string', help: 'also receive compact log records here (udp://, tcp://, unix:)' },
})

const exporter = (str(flags, 'exporter') ?? 'otlp') as ExporterKind
if (!(EXPORTERS as readonly string[]).includes(exporter)) throw new Error(`--exporter: one of ${EXPORTERS.join(', ')}`)
const protocol = (str(flags, 'protocol') ?? 'http/protobuf') as OtlpProtocol
if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new Error(`--protocol: one of ${PROTOCOLS.join(', ')}`)
const d = DEFAULT_CONFIG.export
const config: Config = validateConfig({
  ...DEFAULT_CONFIG,
  listen: (() => {
    const unix = str(flags, 'unix')
    return unix !== undefined ? { path: unix } : { host: str(flags, 'host') ?? '127.0.0.1', port: num(flags, 'port', 0) }
  })(),
  monitorIntervalMs: 0,
  logIntake: (() => {
    const a = str(flags, 'log-intake')
    return { ...DEFAULT_CONFIG.logIntake, addresses: a === undefined ? [] : [parseLogAddress('--log-intake', a)] }
  })(),
  export: {
    ...d,
    headers: { ...d.headers },
    resource: { ...d.resource },
    exporter,
    protocol,
    endpoint: str(flags, 'endpoint') ?? d.endpoint,
    file: str(flags, 'file') ?? d.file,
    numWorkers: num(flags, 'workers', d.numWorkers, 1),
    maxBatchSize: num(flags, 'batch', d.maxBatchSize, 1),
    maxQueueSize: num(flags, 'queue', d.maxQueueSize, 1),
    scheduledDelayMs: num(flags, 'delay', d.scheduledDelayMs, 0),
    maxConcurrentExports: num(flags, 'concurrency', d.maxConcurrentExports, 1),
  },
})
const ticksPerSec = num(flags, 'clk-tck', 100, 1)

// Before the daemon starts its workers: their tags must find a listener.
const workerTids = new Map<number, number>() // tid -> Node threadId
const tags = new BroadcastChannel(THREAD_TAG_CHANNEL)
tags.onmessage = (e: unknown): void => {
  const m = (e as { data?: { tid?: unknown; threadId?: unknown } }).data
  if (typeof m?.tid === 'number' && typeof m.threadId === 'number') workerTids.set(m.tid, m.threadId)
}
;(tags as unknown as { unref?: () => void }).unref?.()

const daemon = await startDaemon(config, pino({ level: 'silent' }))

function print(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

const obj = <K>(m: ReadonlyMap<K, number>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const [k, v] of m) out[String(k)] = v
  return out
}

function usage(type: 'usage' | 'closed'): TracingAgentUsage {
  const cpu = process.cpuUsage()
  const threads: ThreadUsage[] = readThreadCpu(ticksPerSec).map((t) => {
    const threadId = workerTids.get(t.tid)
    const role: ThreadRole = t.tid === process.pid ? 'main' : threadId !== undefined ? 'worker' : 'other'
    return threadId !== undefined ? { ...t, role, threadId } : { ...t, role }
  })
  const elu = performance.eventLoopUtilization()
  const a = daemon.agent.stats
  let protocolErrors = 0
  for (const n of a.protocolErrors.values()) protocolErrors += n
  const t = daemon.store.stats
  const x = daemon.exportStats
  return {
    type,
    atMs: performance.now(),
    userUs: cpu.user,
    systemUs: cpu.system,
    threads,
    ...readRss(),
    heapUsedBytes: process.memoryUsage().heapUsed,
    elu: { idle: elu.idle, active: elu.active },
    agent: {
      notifyReceived: a.notifyReceived,
      messagesReceived: a.messagesReceived,
      acksSent: a.acksSent,
      connectionsOpen: a.connectionsOpen,
      protocolErrors,
      handlerErrors: a.handlerErrors,
    },
    tracing: {
      messages: t.messages,
      treesStarted: t.treesStarted,
      treesCompleted: t.treesCompleted,
      treesReaped: t.treesReaped,
      treesEndedAtShutdown: t.treesEndedAtShutdown,
      treesOpen: daemon.store.size,
      spansStarted: t.spansStarted,
      spansFinished: t.spansFinished,
      openSpans: t.openSpans,
      spansDropped: obj(t.spansDropped),
      messagesRejected: obj(t.messagesRejected),
      argumentErrors: obj(t.argumentErrors),
    },
    logIntake: daemon.logIntake
      ? {
          records: daemon.logIntake.stats.records,
          traced: daemon.logIntake.stats.traced,
          untraced: daemon.logIntake.stats.untraced,
          sampledOut: daemon.logIntake.stats.sampledOut,
          rejected: obj(daemon.logIntake.stats.rejected),
          haproxyDropped: daemon.logIntake.stats.haproxyDropped,
          kernelDrops: daemon.logIntake.kernelDrops(),
        }
      : null,
    export: {
      spansQueued: x.spansQueued,
      spansExported: x.spansExported,
      spansDropped: obj(x.spansDropped),
      batchesExported: x.batchesExported,
      batchesFailed: x.batchesFailed,
      exportMsSum: x.exportMsSum,
      exportMsMax: x.exportMsMax,
      queueDepth: x.queueDepth,
      inFlight: x.inFlight,
      workersUp: x.workersUp,
      workerRestarts: x.workerRestarts,
    },
  }
}

let closing: Promise<void> | null = null
function close(): Promise<void> {
  return (closing ??= (async () => {
    // daemon.close() is bounded by config.shutdownTimeoutMs; this is a second fence.
    let timer: NodeJS.Timeout | undefined
    const fence = new Promise<void>((r) => (timer = setTimeout(r, config.shutdownTimeoutMs + 2000)))
    await Promise.race([daemon.close().catch((err: unknown) => console.error(`close failed: ${String(err)}`)), fence])
    clearTimeout(timer)
    tags.close()
    print(usage('closed'))
    process.exit(0)
  })())
}

print({ type: 'listening', ...daemon.address })

process.on('SIGUSR2', () => print(usage('usage')))
process.on('SIGTERM', () => void close())
process.on('SIGINT', () => void close())
onStdinCommands(
  (cmd) => {
    if (cmd === 'usage') print(usage('usage'))
    else if (cmd === 'close') void close()
    else console.error(`tracing agent: unknown command "${cmd}"`)
  },
  () => void close(),
)
