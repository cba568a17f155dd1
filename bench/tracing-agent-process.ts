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
//   {"type":"listening","port":N}   once, when the daemon accepts connections
//                       (and "logPort":N, the log intake's port, when it has one);
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
//          [--max-trees N] [--tree-ttl MS]       (the open-tree limits, as the agent's options)

import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { type Config, DEFAULT_CONFIG, validateConfig } from '../src/daemon/config.js'
import { CPU_SCHEDS, type CpuSched } from '../src/daemon/cpu-sched.js'
import { EXPORTERS, type ExporterKind, type OtlpProtocol, PROTOCOLS } from '../src/export/config.js'
import { parseLogAddress } from '../src/intake/log/index.js'
import { startDaemon } from '../src/daemon/main.js'
import { num, parseChildArgs, str } from './cli.js'
import { onStdinCommands, print } from './json-line-child.js'
import { readRss, readThreadCpu } from './proc-stats.js'

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
    /** NOTIFYs answered and not yet applied (with the tracing thread: or not yet in its last report). */
    pending: number
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
    tcpReads: number
    tcpRests: number
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
    /** Exports are failing now (the collector is gone, or refuses). */
    failing: boolean
  }
}

/** The same name in thread-tag.cts. */
const THREAD_TAG_CHANNEL = 'spoa-tracer-bench-thread-tag'

const flags = parseChildArgs(process.argv.slice(2), {
  host: { type: 'string', default: '127.0.0.1', describe: 'address to listen on' },
  port: { type: 'number', default: 0, describe: 'port (0: any free one)' },
  unix: { type: 'string', describe: 'listen on this unix socket instead' },
  exporter: { type: 'string', default: 'otlp', choices: EXPORTERS, describe: 'where spans go' },
  protocol: { type: 'string', default: 'http/protobuf', choices: PROTOCOLS, describe: 'OTLP encoding' },
  endpoint: { type: 'string', describe: 'OTLP traces URL' },
  file: { type: 'string', describe: 'output of the file exporter' },
  workers: { type: 'number', default: DEFAULT_CONFIG.export.numWorkers, describe: 'export worker threads' },
  batch: { type: 'number', default: DEFAULT_CONFIG.export.maxBatchSize, describe: 'max spans per export batch' },
  queue: { type: 'number', default: DEFAULT_CONFIG.export.maxQueueSize, describe: 'max spans queued or in flight' },
  delay: { type: 'number', default: DEFAULT_CONFIG.export.scheduledDelayMs, describe: 'scheduled delay of a partial batch, ms' },
  concurrency: { type: 'number', default: DEFAULT_CONFIG.export.maxConcurrentExports, describe: 'exports in flight per worker' },
  'clk-tck': { type: 'number', default: 100, describe: 'USER_HZ (getconf CLK_TCK)' },
  'log-intake': { type: 'string', describe: 'also receive compact log records here (udp://, tcp://, unix:)' },
  'log-read-pause': { type: 'number', default: DEFAULT_CONFIG.logIntake.readPauseMs, describe: "ms a TCP log stream rests after a short read (the agent's --log-read-pause)" },
  'cpu-sched': { type: 'string', default: DEFAULT_CONFIG.cpuSched, describe: "normal, idle or tracing-idle (the agent's --cpu-sched)" },
  'max-trees': { type: 'number', default: DEFAULT_CONFIG.tree.maxTrees, describe: 'open trees at most' },
  'tree-ttl': { type: 'number', default: DEFAULT_CONFIG.tree.idleTtlMs, describe: 'ms a tree may stay idle before it is reaped' },
})

const exporter = str(flags, 'exporter') as ExporterKind
const protocol = str(flags, 'protocol') as OtlpProtocol
const d = DEFAULT_CONFIG.export
const config: Config = validateConfig({
  ...DEFAULT_CONFIG,
  listen: (() => {
    const unix = str(flags, 'unix')
    return unix !== undefined ? { path: unix } : { host: str(flags, 'host')!, port: num(flags, 'port') }
  })(),
  monitorIntervalMs: 0,
  cpuSched: (CPU_SCHEDS as readonly string[]).includes(str(flags, 'cpu-sched') ?? '') ? (str(flags, 'cpu-sched') as CpuSched) : 'normal',
  tree: { ...DEFAULT_CONFIG.tree, maxTrees: num(flags, 'max-trees', 1), idleTtlMs: num(flags, 'tree-ttl', 1) },
  logIntake: (() => {
    const a = str(flags, 'log-intake')
    return { ...DEFAULT_CONFIG.logIntake, addresses: a === undefined ? [] : [parseLogAddress('--log-intake', a)], readPauseMs: num(flags, 'log-read-pause', 0) }
  })(),
  export: {
    ...d,
    headers: { ...d.headers },
    resource: { ...d.resource },
    exporter,
    protocol,
    endpoint: str(flags, 'endpoint') ?? d.endpoint,
    file: str(flags, 'file') ?? d.file,
    numWorkers: num(flags, 'workers', 1),
    maxBatchSize: num(flags, 'batch', 1),
    maxQueueSize: num(flags, 'queue', 1),
    scheduledDelayMs: num(flags, 'delay', 0),
    maxConcurrentExports: num(flags, 'concurrency', 1),
  },
})
const ticksPerSec = num(flags, 'clk-tck', 1)

// Before the daemon starts its workers: their tags must find a listener.
const workerTids = new Map<number, number>() // tid -> Node threadId
const tags = new BroadcastChannel(THREAD_TAG_CHANNEL)
tags.onmessage = (e: unknown): void => {
  const m = (e as { data?: { tid?: unknown; threadId?: unknown } }).data
  if (typeof m?.tid === 'number' && typeof m.threadId === 'number') workerTids.set(m.tid, m.threadId)
}
;(tags as unknown as { unref?: () => void }).unref?.()

const daemon = await startDaemon(config, pino({ level: 'silent' }))

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
  const t = daemon.trees.stats
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
      treesOpen: daemon.trees.size,
      pending: daemon.tracing.pending,
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
          tcpReads: daemon.logIntake.stats.tcpReads,
          tcpRests: daemon.logIntake.stats.tcpRests,
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
      failing: x.failingSince > 0,
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

// The log intake's port too, when it was asked for port 0.
const logIntake = daemon.logIntake?.addresses[0]
print({ type: 'listening', ...daemon.address, ...(logIntake !== undefined && 'port' in logIntake ? { logPort: logIntake.port } : {}) })

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
