// The tracing benchmark: the real daemon (startDaemon: SPOP agent, trace
// store, span queue, export worker pool) in a child process
// (tracing-agent-process.ts), exporting OTLP/HTTP to a counting sink in a
// second child (otlp-sink.ts), driven by the load generator in this process
// replaying the spoa-opentracing 9-span flow (harness/flows/nine-span.ts:
// 8 NOTIFY frames and 9 spans per request).
//
// It checks the project's target: >= 20,000 requests/s (180,000 spans/s)
// actually exported, with the agent using at most two cores, and at most
// 100 µs of agent CPU per request, export included.
//
// Per run it reports, over the measured window:
//   - requests/s: flows completed by the load generator (ACKs / 8), NOTIFY/s;
//   - spans/s received by the sink, and spans received per request (9 when
//     every span of every request reaches the collector);
//   - the agent's CPU per request and share of a core, in total and split by
//     thread: main (SPOP, tracing grammar, span trees, hand-off to the
//     workers), export workers (OTel conversion, serialization, HTTP) and
//     other (V8 GC/compiler helper threads, libuv, threads that exited);
//   - its peak RSS, its main event-loop utilisation, dropped spans by reason;
//   - the load generator's, the sink's and every other process's CPU
//     (machine busy time from /proc/stat minus ours): the noise figure.
// After the window the load stops and the agent is given a bounded time to
// drain (queue empty, nothing in flight, the sink holding exactly what the
// agent counted as exported): that is the end-to-end proof of export.
// Then the agent closes gracefully (open trees of the requests cut short by
// the end of the load are ended and flushed) and its final counters are read.

import { mkdirSync, readdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nineSpanFlow } from '../harness/flows/nine-span.js'
import { guardChildren } from '../harness/process.js'
import { type Column, fmt, medianRecord, spread, table } from '../harness/report.js'
import { sleep } from '../harness/wait.js'
import { DEFAULT_EXPORT_CONFIG } from '../src/export/config.js'
import { type Args, type BenchCommand, bool, num, str, UsageError } from './cli.js'
import { AGENT_SCRIPT, shippedNodeFlags } from './agent-launch.js'
import { JsonLineChild } from './json-line-child.js'
import { buildFlow, UNIQUE_ID } from './notify-template.js'
import type { SinkUsage } from './otlp-sink.js'
import { clockTicksPerSec, type MachineCpu, readMachineCpu } from './proc-stats.js'
import { formatErrors, LOAD_OPTIONS, type LoadgenResult, runLoadgen } from './spop-loadgen.js'
import type { ThreadUsage, TracingAgentUsage } from './tracing-agent-process.js'

/** The project's targets. */
const TARGET_REQUESTS_PER_SEC = 20_000
const SPANS_PER_REQUEST = 9
const TARGET_US_PER_REQUEST = 100
const TARGET_MAX_CORES = 2

const SINK_SCRIPT = fileURLToPath(new URL('./otlp-sink.js', import.meta.url))
const THREAD_TAG_SCRIPT = fileURLToPath(new URL('./thread-tag.cjs', import.meta.url))

const d = DEFAULT_EXPORT_CONFIG

interface Options {
  exporter: 'otlp' | 'none'
  protocol: 'http/protobuf' | 'http/json'
  workers: number
  batch: number
  queue: number
  delayMs: number
  concurrency: number
  connections: number
  depth: number
  durationS: number
  warmupS: number
  runs: number
  cpuProfDir: string | undefined
  json: boolean
}

function options(v: Args): Options {
  const exporter = str(v, 'exporter')!
  if (exporter !== 'otlp' && exporter !== 'none') throw new UsageError(`--exporter: otlp or none, not ${exporter}`)
  const p = str(v, 'protocol')!
  const protocol = p === 'protobuf' ? 'http/protobuf' : p === 'json' ? 'http/json' : p
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new UsageError(`--protocol: http/protobuf or http/json, not ${p}`)
  }
  const batch = num(v, 'batch', 1)
  const queue = v.queue === undefined ? Math.max(d.maxQueueSize, batch) : num(v, 'queue', 1)
  if (batch > queue) throw new UsageError(`--batch (${batch}) must not exceed --queue (${queue})`)
  const workers = num(v, 'workers', 1)
  if (workers > 64) throw new UsageError('--workers: 1 to 64')
  const prof = str(v, 'cpu-prof')
  return {
    exporter,
    protocol,
    workers,
    batch,
    queue,
    delayMs: num(v, 'delay', 0),
    concurrency: num(v, 'concurrency', 1),
    connections: num(v, 'connections', 1),
    depth: num(v, 'depth', 1),
    durationS: num(v, 'duration', 0.1),
    warmupS: num(v, 'warmup', 0),
    runs: num(v, 'runs', 1),
    cpuProfDir: prof ? resolve(prof) : undefined,
    json: bool(v, 'json'),
  }
}

// ---- one run ---------------------------------------------------------------

/** Per-thread-class CPU, microseconds. */
interface CpuSplit {
  total: number
  main: number
  workers: number
  /** total - main - workers: V8 helper threads, libuv, exited threads, tick rounding. */
  other: number
  /** Σ over the live threads of /proc/self/task (to check process.cpuUsage covers them all). */
  threadSum: number
}

export interface TracingRunResult {
  run: number
  windowS: number
  requestsPerSec: number
  framesPerSec: number
  /** Spans received by the sink in the window, per second (NaN with --exporter none). */
  spansPerSec: number
  /** Spans the agent counted as exported in the window, per second. */
  exportedPerSec: number
  /** Spans received by the sink in the window / requests completed in it. */
  spansPerRequest: number
  latencyUs: { p50: number; p99: number }
  /** Agent CPU per request completed in the window, µs. */
  usPerRequest: { total: number; main: number; workers: number; other: number }
  /** Agent CPU, percent of one core. */
  agentPct: { total: number; main: number; workers: number; other: number }
  /** Main thread event-loop utilisation in the window, percent. */
  mainElu: number
  /** |process.cpuUsage - Σ threads| / process.cpuUsage over the window, percent. */
  threadAccountingGapPct: number
  agentPeakRssMb: number
  agentRssMb: number
  /** Exported spans per export batch, in the window. */
  spansPerBatch: number
  exportMsMean: number
  exportMsMax: number
  /** Spans dropped by reason, agent lifetime up to the drain (export and tracing side). */
  dropped: Record<string, number>
  droppedTotal: number
  /** Messages the grammar refused and arguments it ignored (0 for a correct flow). */
  grammarErrors: Record<string, number>
  loadgenPct: number
  loadgenUsPerRequest: number
  sinkPct: number
  /** CPU of every other process, percent of one core (-1: unknown). */
  otherProcsPct: number
  stealPct: number
  /** irq + softirq time of the machine, percent of one core (-1: unknown); not in otherProcsPct. */
  irqPct: number
  /** After the load: did the agent drain, and does the sink hold what it exported? */
  drain: {
    ok: boolean
    ms: number
    spansExported: number
    sinkSpans: number
    sinkRequests: number
    sinkBytesPerSpan: number
    queueDepth: number
    inFlight: number
    treesStarted: number
    treesCompleted: number
    treesOpen: number
    /** spansExported / treesCompleted (9 when complete trees are exported whole). */
    spansPerTree: number
    /** Exported + dropped on the export side = 9 x completed trees: every span of every completed request is accounted for. */
    accounted: boolean
  }
  /** Counters after the graceful close (the open trees ended and flushed). */
  closed: { spansExported: number; sinkSpans: number; treesEndedAtShutdown: number; dropped: Record<string, number> } | null
  errors: { loadgen: number; protocol: number; handler: number; sinkRejected: number }
  loadgen: LoadgenResult
}

function cpuOf(u: { userUs: number; systemUs: number }): number {
  return u.userUs + u.systemUs
}

function splitCpu(a0: TracingAgentUsage, a1: TracingAgentUsage): CpuSplit {
  const before = new Map<number, ThreadUsage>(a0.threads.map((t) => [t.tid, t]))
  let main = 0
  let workers = 0
  let threadSum = 0
  for (const t of a1.threads) {
    const t0 = before.get(t.tid)
    const dt = cpuOf(t) - (t0 ? cpuOf(t0) : 0) // a thread born in the window counts whole
    threadSum += dt
    if (t.role === 'main') main += dt
    else if (t.role === 'worker') workers += dt
  }
  const total = cpuOf(a1) - cpuOf(a0)
  return { total, main, workers, other: total - main - workers, threadSum }
}

function mergeCounts(...maps: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of maps) for (const [k, v] of Object.entries(m)) if (v > 0) out[k] = (out[k] ?? 0) + v
  return out
}

const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)

function agentArgs(o: Options, endpoint: string | null): string[] {
  return [
    '--host', '127.0.0.1', '--port', '0',
    '--exporter', o.exporter,
    '--protocol', o.protocol,
    ...(endpoint ? ['--endpoint', endpoint] : []),
    '--workers', String(o.workers),
    '--batch', String(o.batch),
    '--queue', String(o.queue),
    '--delay', String(o.delayMs),
    '--concurrency', String(o.concurrency),
    '--clk-tck', String(clockTicksPerSec()),
  ]
}

const usage = (agent: JsonLineChild, timeoutMs = 5000): Promise<TracingAgentUsage> =>
  agent.request<TracingAgentUsage>('usage', 'usage', timeoutMs)
const sinkUsage = (sink: JsonLineChild, timeoutMs = 5000): Promise<SinkUsage> => sink.request<SinkUsage>('usage', 'usage', timeoutMs)

/**
 * Waits (bounded) until the agent's queue is empty, nothing is in flight and
 * the sink has received exactly the spans the agent counts as exported.
 */
async function waitDrained(
  agent: JsonLineChild,
  sink: JsonLineChild | null,
  boundMs: number,
): Promise<{ ok: boolean; ms: number; a: TracingAgentUsage; s: SinkUsage | null }> {
  const t0 = Date.now()
  for (;;) {
    const [a, s] = await Promise.all([usage(agent), sink ? sinkUsage(sink) : Promise.resolve(null)])
    const idle = a.export.queueDepth === 0 && a.export.inFlight === 0
    const ok = idle && (s === null || s.spans === a.export.spansExported)
    const ms = Date.now() - t0
    if (ok || ms >= boundMs) return { ok, ms, a, s }
    await sleep(50)
  }
}

async function oneRun(run: number, o: Options): Promise<TracingRunResult> {
  const flow = buildFlow(nineSpanFlow({ uniqueId: UNIQUE_ID }))
  let sink: JsonLineChild | null = null
  let agent: JsonLineChild | null = null
  const stopWaitMs = o.cpuProfDir ? 60_000 : 15_000
  try {
    if (o.exporter === 'otlp') sink = await JsonLineChild.start({ name: 'the OTLP sink', script: SINK_SCRIPT })
    const endpoint = sink ? `http://127.0.0.1:${sink.port}/v1/traces` : null
    agent = await JsonLineChild.start({
      name: 'the tracing agent',
      script: AGENT_SCRIPT,
      args: agentArgs(o, endpoint),
      nodeArgs: [...shippedNodeFlags(), ...(o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : []), '--require', THREAD_TAG_SCRIPT],
      timeoutMs: 30_000,
    })
    const a = agent
    const s = sink
    // Filled by the hooks, which the load generator calls synchronously at the window's edges.
    const at: {
      a0?: Promise<TracingAgentUsage>
      a1?: Promise<TracingAgentUsage>
      s0?: Promise<SinkUsage | null>
      s1?: Promise<SinkUsage | null>
      m0?: MachineCpu | null
      m1?: MachineCpu | null
    } = {}
    const edge = (): [Promise<TracingAgentUsage>, Promise<SinkUsage | null>, MachineCpu | null] => {
      const pa = usage(a)
      const ps = s ? sinkUsage(s) : Promise.resolve(null)
      pa.catch(() => {}) // awaited below; a rejection must not go unhandled meanwhile
      ps.catch(() => {})
      return [pa, ps, readMachineCpu()]
    }
    const r = await runLoadgen({
      target: { host: '127.0.0.1', port: a.port },
      connections: o.connections,
      depth: o.depth,
      durationS: o.durationS,
      warmupS: o.warmupS,
      flow,
      drainTimeoutMs: 5000,
      hooks: {
        onWindowStart: () => ([at.a0, at.s0, at.m0] = edge()),
        onWindowEnd: () => ([at.a1, at.s1, at.m1] = edge()),
      },
    })
    if (!at.a0 || !at.a1 || !at.s0 || !at.s1) throw new Error('the measured window never opened')
    const [a0, a1, s0, s1] = await Promise.all([at.a0, at.a1, at.s0, at.s1])

    const drained = await waitDrained(a, s, o.delayMs + 15_000)
    const ad = drained.a
    const sd = drained.s

    // Graceful close: in-flight frames, open trees ended, queue flushed, workers stopped.
    let closed: TracingRunResult['closed'] = null
    try {
      const c = await a.request<TracingAgentUsage>('close', 'closed', 20_000)
      const sc = s ? await waitSinkAt(s, c.export.spansExported, 3000) : null
      closed = {
        spansExported: c.export.spansExported,
        sinkSpans: sc?.spans ?? 0,
        treesEndedAtShutdown: c.tracing.treesEndedAtShutdown,
        dropped: mergeCounts(c.export.spansDropped, c.tracing.spansDropped),
      }
      if (!(await a.waitExit(stopWaitMs))) console.error('the tracing agent did not exit after closing')
    } catch (err) {
      console.error(`closing the tracing agent: ${(err as Error).message}`)
    }

    const windowS = r.windowS
    const windowUs = windowS * 1e6
    const requests = r.frames / flow.length
    const cpu = splitCpu(a0, a1)
    const perReq = (us: number): number => (requests > 0 ? us / requests : NaN)
    const pct = (us: number): number => (us / windowUs) * 100
    const loadgenUs = r.loadgenCpu.userUs + r.loadgenCpu.systemUs
    const sinkUs = s0 && s1 ? cpuOf(s1) - cpuOf(s0) : 0
    const m0 = at.m0 ?? null
    const m1 = at.m1 ?? null
    // Interrupt time is apart: on loopback much of it is our own traffic, charged to no process.
    const irq = m0 && m1 ? m1.irqUs - m0.irqUs : NaN
    const others = m0 && m1 ? m1.busyUs - m0.busyUs - irq - cpu.total - loadgenUs - sinkUs : NaN
    const steal = m0 && m1 ? m1.stealUs - m0.stealUs : NaN
    const sinkSpans = s0 && s1 ? s1.spans - s0.spans : NaN
    const agentWindowS = (a1.atMs - a0.atMs) / 1000
    const exported = a1.export.spansExported - a0.export.spansExported
    const batches = a1.export.batchesExported - a0.export.batchesExported
    const eluActive = a1.elu.active - a0.elu.active
    const eluIdle = a1.elu.idle - a0.elu.idle
    const dropped = mergeCounts(ad.export.spansDropped, ad.tracing.spansDropped)
    const grammarErrors = mergeCounts(ad.tracing.messagesRejected, ad.tracing.argumentErrors)
    return {
      run,
      windowS,
      requestsPerSec: r.requestsPerSec,
      framesPerSec: r.framesPerSec,
      spansPerSec: sinkSpans / windowS,
      exportedPerSec: exported / agentWindowS,
      spansPerRequest: requests > 0 ? sinkSpans / requests : NaN,
      latencyUs: { p50: r.latencyUs.p50, p99: r.latencyUs.p99 },
      usPerRequest: { total: perReq(cpu.total), main: perReq(cpu.main), workers: perReq(cpu.workers), other: perReq(cpu.other) },
      agentPct: { total: pct(cpu.total), main: pct(cpu.main), workers: pct(cpu.workers), other: pct(cpu.other) },
      mainElu: eluActive + eluIdle > 0 ? (eluActive / (eluActive + eluIdle)) * 100 : NaN,
      threadAccountingGapPct: cpu.total > 0 ? (Math.abs(cpu.total - cpu.threadSum) / cpu.total) * 100 : 0,
      agentPeakRssMb: a1.peakRssBytes / 2 ** 20,
      agentRssMb: a1.rssBytes / 2 ** 20,
      spansPerBatch: batches > 0 ? exported / batches : NaN,
      exportMsMean: batches > 0 ? (a1.export.exportMsSum - a0.export.exportMsSum) / batches : NaN,
      exportMsMax: a1.export.exportMsMax,
      dropped,
      droppedTotal: sum(dropped),
      grammarErrors,
      loadgenPct: r.loadgenCpu.utilisation,
      loadgenUsPerRequest: perReq(loadgenUs),
      sinkPct: pct(sinkUs),
      // Jiffies are coarse (10 ms): a small negative value is rounding, not negative work.
      otherProcsPct: Number.isNaN(others) ? -1 : Math.max(0, pct(others)),
      stealPct: Number.isNaN(steal) ? -1 : pct(steal),
      irqPct: Number.isNaN(irq) ? -1 : pct(irq),
      drain: {
        ok: drained.ok,
        ms: drained.ms,
        spansExported: ad.export.spansExported,
        sinkSpans: sd?.spans ?? 0,
        sinkRequests: sd?.requests ?? 0,
        sinkBytesPerSpan: sd && sd.spans > 0 ? sd.bytes / sd.spans : NaN,
        queueDepth: ad.export.queueDepth,
        inFlight: ad.export.inFlight,
        treesStarted: ad.tracing.treesStarted,
        treesCompleted: ad.tracing.treesCompleted,
        treesOpen: ad.tracing.treesOpen,
        spansPerTree: ad.tracing.treesCompleted > 0 ? ad.export.spansExported / ad.tracing.treesCompleted : NaN,
        accounted:
          ad.tracing.treesReaped === 0 &&
          ad.export.spansExported + sum(ad.export.spansDropped) === SPANS_PER_REQUEST * ad.tracing.treesCompleted,
      },
      closed,
      errors: {
        loadgen: r.errors.total,
        protocol: ad.agent.protocolErrors,
        handler: ad.agent.handlerErrors,
        sinkRejected: sd?.rejected ?? 0,
      },
      loadgen: r,
    }
  } finally {
    await agent?.stop(stopWaitMs)
    await sink?.stop(5000)
  }
}

/** The sink's counters once it holds `spans` spans, or after `boundMs`. */
async function waitSinkAt(sink: JsonLineChild, spans: number, boundMs: number): Promise<SinkUsage> {
  const t0 = Date.now()
  for (;;) {
    const s = await sinkUsage(sink)
    if (s.spans >= spans || Date.now() - t0 >= boundMs) return s
    await sleep(50)
  }
}

// ---- report ----------------------------------------------------------------

type Col = Column<TracingRunResult>

const THROUGHPUT: Col[] = [
  ['req/s', 8, (r) => fmt(r.requestsPerSec)],
  ['NOTIFY/s', 9, (r) => fmt(r.framesPerSec)],
  ['spans/s rcvd', 12, (r) => fmt(r.spansPerSec)],
  ['spans/req', 9, (r) => fmt(r.spansPerRequest, 2)],
  ['p50 µs', 7, (r) => fmt(r.latencyUs.p50)],
  ['p99 µs', 7, (r) => fmt(r.latencyUs.p99)],
  ['spans/batch', 11, (r) => fmt(r.spansPerBatch)],
  ['export ms', 9, (r) => fmt(r.exportMsMean, 1)],
  ['peak RSS MB', 11, (r) => fmt(r.agentPeakRssMb)],
  ['dropped', 7, (r) => fmt(r.droppedTotal)],
  ['drained', 7, (r) => (r.drain.ok ? 'yes' : 'NO')],
]

const CPU: Col[] = [
  ['µs/req', 6, (r) => fmt(r.usPerRequest.total, 1)],
  ['main', 5, (r) => fmt(r.usPerRequest.main, 1)],
  ['workers', 7, (r) => fmt(r.usPerRequest.workers, 1)],
  ['other', 5, (r) => fmt(r.usPerRequest.other, 1)],
  ['agent %core', 11, (r) => fmt(r.agentPct.total)],
  ['main %', 6, (r) => fmt(r.agentPct.main)],
  ['wrk %', 5, (r) => fmt(r.agentPct.workers)],
  ['oth %', 5, (r) => fmt(r.agentPct.other)],
  ['main ELU %', 10, (r) => fmt(r.mainElu)],
  ['lg %core', 8, (r) => fmt(r.loadgenPct)],
  ['lg µs/req', 9, (r) => fmt(r.loadgenUsPerRequest, 1)],
  ['sink %core', 10, (r) => fmt(r.sinkPct)],
  ['others %core', 12, (r) => (r.otherProcsPct < 0 ? 'n/a' : fmt(r.otherProcsPct))],
  ['irq %', 5, (r) => (r.irqPct < 0 ? 'n/a' : fmt(r.irqPct))],
  ['steal %', 7, (r) => (r.stealPct < 0 ? 'n/a' : fmt(r.stealPct))],
]

/** The median of every numeric field (drain, errors and the loadgen result come from the median-throughput run). */
function medianResult(rs: readonly TracingRunResult[]): TracingRunResult {
  const byRate = [...rs].sort((a, b) => a.requestsPerSec - b.requestsPerSec)[rs.length >> 1]!
  const base = { dropped: 'base', grammarErrors: 'base', drain: 'base', closed: 'base', errors: 'base', loadgen: 'base' } as const
  return { ...medianRecord(rs, base, byRate), run: 0 }
}

/**
 * Requests/s the agent could sustain on two cores of its own, from its CPU
 * per request: the main thread is one thread (it caps at one core), the
 * whole process at two. An upper bound: it assumes perfect scaling.
 */
function capacity(r: TracingRunResult): number {
  return Math.min(1e6 / r.usPerRequest.main, (TARGET_MAX_CORES * 1e6) / r.usPerRequest.total)
}

function describe(o: Options): string {
  const exp =
    o.exporter === 'none'
      ? 'exporter none (tracing only, nothing exported)'
      : `OTLP ${o.protocol} to a counting sink, ${o.workers} worker(s), batch ${o.batch}, queue ${o.queue}, ` +
        `delay ${o.delayMs} ms, ${o.concurrency} exports in flight/worker`
  return (
    `tracing agent, 9-span flow (8 NOTIFY/request): ${o.connections} connections x depth ${o.depth}, ` +
    `${o.durationS} s after ${o.warmupS} s warm-up, ${o.runs} run(s); ${exp}; node ${process.version}, ${cpus().length} CPUs`
  )
}

function verdict(o: Options, med: TracingRunResult, results: readonly TracingRunResult[]): string[] {
  const lines: string[] = []
  const cap = capacity(med)
  const cpuMet = med.usPerRequest.total <= TARGET_US_PER_REQUEST
  if (o.exporter === 'none') {
    lines.push(
      `no export: ${fmt(med.requestsPerSec)} req/s, ${fmt(med.usPerRequest.total, 1)} µs of agent CPU per request ` +
        `(main thread ${fmt(med.usPerRequest.main, 1)}); the target of ${TARGET_US_PER_REQUEST} µs/request includes export.`,
    )
  } else {
    const rateMet = med.requestsPerSec >= TARGET_REQUESTS_PER_SEC && med.spansPerSec >= TARGET_REQUESTS_PER_SEC * SPANS_PER_REQUEST
    const coresMet = med.agentPct.total <= TARGET_MAX_CORES * 100
    const dropRuns = results.filter((r) => r.droppedTotal > 0).length
    const dropped = results.reduce((n, r) => n + r.droppedTotal, 0)
    const complete = Math.abs(med.spansPerRequest - SPANS_PER_REQUEST) < 0.1 && dropRuns === 0
    lines.push(
      `target ${fmt(TARGET_REQUESTS_PER_SEC)} req/s = ${fmt(TARGET_REQUESTS_PER_SEC * SPANS_PER_REQUEST)} spans/s exported: ` +
        `${rateMet && coresMet && complete ? 'met' : 'NOT met'} (median ${fmt(med.requestsPerSec)} req/s, ` +
        `${fmt(med.spansPerSec)} spans/s received, ${fmt(med.spansPerRequest, 2)} spans/request, ` +
        `agent ${fmt(med.agentPct.total)}% of a core, ${fmt(dropped)} spans dropped in ${dropRuns} of ${results.length} run(s))`,
    )
  }
  lines.push(
    `target ≤ ${TARGET_US_PER_REQUEST} µs agent CPU/request: ${cpuMet ? 'met' : 'NOT met'} ` +
      `(median ${fmt(med.usPerRequest.total, 1)} µs = main ${fmt(med.usPerRequest.main, 1)} + workers ` +
      `${fmt(med.usPerRequest.workers, 1)} + other threads ${fmt(med.usPerRequest.other, 1)}; ` +
      `${fmt(med.usPerRequest.total / TARGET_US_PER_REQUEST, 2)}x the target)`,
  )
  lines.push(
    `capacity on ${TARGET_MAX_CORES} cores of its own (from CPU/request, perfect scaling assumed): ` +
      `~${fmt(cap)} req/s (main thread alone caps at ${fmt(1e6 / med.usPerRequest.main)} req/s); ` +
      `${fmt((cap / TARGET_REQUESTS_PER_SEC) * 100)}% of the ${fmt(TARGET_REQUESTS_PER_SEC)} req/s target`,
  )
  return lines
}


export const command: BenchCommand = {
  name: 'tracing',
  describe: 'the tracing daemon (9-span flow) exporting OTLP to a counting sink, under load',
  options: {
    exporter: { type: 'string', default: 'otlp', describe: 'otlp (to the counting sink) or none (tracing without export)' },
    protocol: { type: 'string', default: d.protocol, describe: 'http/protobuf or http/json' },
    workers: { type: 'number', default: d.numWorkers, describe: 'export worker threads' },
    batch: { type: 'number', default: d.maxBatchSize, describe: 'max spans per export batch' },
    queue: { type: 'number', describe: `max spans queued or in flight (default ${d.maxQueueSize}, or --batch if larger)` },
    delay: { type: 'number', default: d.scheduledDelayMs, describe: 'ms before a partial batch leaves' },
    concurrency: { type: 'number', default: d.maxConcurrentExports, describe: 'export requests in flight per worker' },
    ...LOAD_OPTIONS,
    runs: { type: 'number', default: 3, describe: 'runs, each with a fresh agent and sink; the median is printed too' },
    'cpu-prof': { type: 'string', describe: 'start the agent with node --cpu-prof --cpu-prof-dir DIR (one profile per thread)' },
    json: { type: 'boolean', describe: 'print one JSON line per run and one for the median' },
  },
  epilogue: 'Checks the targets: 20,000 requests/s (180,000 spans/s) exported, at most 100 µs of agent CPU per request.',
  run: (a) => main(options(a)),
}

async function main(o: Options): Promise<number> {
  if (o.cpuProfDir) mkdirSync(o.cpuProfDir, { recursive: true })
  clockTicksPerSec()
  const profilesBefore = new Set(o.cpuProfDir ? readdirSync(o.cpuProfDir) : [])
  const unguard = guardChildren()
  try {
    if (!o.json) console.log(describe(o))
    const results: TracingRunResult[] = []
    for (let i = 1; i <= o.runs; i++) {
      const r = await oneRun(i, o)
      results.push(r)
      if (o.json) {
        const { loadgen, ...rest } = r
        console.log(JSON.stringify({ ...rest, loadgenErrors: loadgen.errors }))
      } else {
        console.log(
          `run ${i}: ${fmt(r.requestsPerSec)} req/s, ${fmt(r.spansPerSec)} spans/s received ` +
            `(${fmt(r.spansPerRequest, 2)}/req), ${fmt(r.usPerRequest.total, 1)} µs/req ` +
            `(main ${fmt(r.usPerRequest.main, 1)}, workers ${fmt(r.usPerRequest.workers, 1)}, other ${fmt(r.usPerRequest.other, 1)}), ` +
            `others on the machine ${r.otherProcsPct < 0 ? 'n/a' : `${fmt(r.otherProcsPct)}%`}`,
        )
        for (const line of runNotes(o, r)) console.log(`        ${line}`)
      }
    }
    const med = medianResult(results)
    if (o.json) {
      const { loadgen: _l, ...rest } = med
      console.log(
        JSON.stringify({
          median: rest,
          spreadPct: { requestsPerSec: spread(results.map((r) => r.requestsPerSec)), usPerRequest: spread(results.map((r) => r.usPerRequest.total)) },
          capacityRequestsPerSec: capacity(med),
          targets: { requestsPerSec: TARGET_REQUESTS_PER_SEC, usPerRequest: TARGET_US_PER_REQUEST, maxCores: TARGET_MAX_CORES },
        }),
      )
    } else {
      const rows: Array<[string, TracingRunResult]> = results.map((r) => [String(r.run), r])
      if (results.length > 1) rows.push(['median', med])
      console.log('')
      for (const l of table(THROUGHPUT, rows)) console.log(l)
      console.log('')
      for (const l of table(CPU, rows)) console.log(l)
      console.log('')
      if (results.length > 1) {
        console.log(
          `noise: run-to-run spread (max-min)/median ${fmt(spread(results.map((r) => r.requestsPerSec)))}% in req/s, ` +
            `${fmt(spread(results.map((r) => r.usPerRequest.total)))}% in µs/req; other processes used ` +
            `${fmt(Math.min(...results.map((r) => r.otherProcsPct)))}-${fmt(Math.max(...results.map((r) => r.otherProcsPct)))}% of a core`,
        )
      }
      for (const l of verdict(o, med, results)) console.log(l)
      console.log(
        'µs/req = agent CPU per request (all threads) = main + workers (export threads) + other (V8 GC/compiler ' +
          'helpers, libuv); %core = percent of one core; lg = load generator; others = every other process on the machine; irq = interrupt time (mostly our loopback traffic).',
      )
    }
    if (o.cpuProfDir) {
      const fresh = readdirSync(o.cpuProfDir).filter((f) => f.endsWith('.cpuprofile') && !profilesBefore.has(f))
      for (const f of fresh.sort()) {
        // CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile: threadId 0 is the main thread.
        const threadId = f.split('.')[4]
        console.error(`agent CPU profile (${threadId === '0' ? 'main thread' : `worker thread ${threadId}`}): ${join(o.cpuProfDir, f)}`)
      }
    }
    const errors = results.reduce(
      (n, r) =>
        n +
        r.errors.loadgen +
        r.errors.protocol +
        r.errors.handler +
        r.errors.sinkRejected +
        (r.drain.ok ? 0 : 1) +
        (o.exporter === 'otlp' && !r.drain.accounted ? 1 : 0),
      0,
    )
    return errors === 0 ? 0 : 1
  } finally {
    unguard()
  }
}

/** Per-run lines worth a look: errors, drops, the drain check, grammar errors. */
function runNotes(o: Options, r: TracingRunResult): string[] {
  const notes: string[] = []
  const dr = r.drain
  if (o.exporter === 'otlp') {
    notes.push(
      `drain: ${dr.ok ? 'ok' : 'NOT drained'} after ${fmt(dr.ms)} ms: agent exported ${fmt(dr.spansExported)} spans, ` +
        `sink received ${fmt(dr.sinkSpans)} in ${fmt(dr.sinkRequests)} requests (${fmt(dr.sinkBytesPerSpan)} B/span); ` +
        `trees started ${fmt(dr.treesStarted)}, completed ${fmt(dr.treesCompleted)}, open ${fmt(dr.treesOpen)}; ` +
        `exported/completed tree ${fmt(dr.spansPerTree, 3)}; exported + dropped ${dr.accounted ? '=' : '!='} ` +
        `${SPANS_PER_REQUEST} x completed trees` +
        (dr.ok ? '' : `; queue ${fmt(dr.queueDepth)}, in flight ${fmt(dr.inFlight)}`),
    )
    if (r.closed) {
      notes.push(
        `after close: ${fmt(r.closed.treesEndedAtShutdown)} open trees ended, agent exported ${fmt(r.closed.spansExported)}, ` +
          `sink received ${fmt(r.closed.sinkSpans)}` +
          (sum(r.closed.dropped) > 0 ? `, dropped ${JSON.stringify(r.closed.dropped)}` : ''),
      )
    }
  } else {
    notes.push(`trees started ${fmt(dr.treesStarted)}, completed ${fmt(dr.treesCompleted)}, open ${fmt(dr.treesOpen)}`)
  }
  if (r.droppedTotal > 0) notes.push(`dropped spans: ${JSON.stringify(r.dropped)}`)
  if (sum(r.grammarErrors) > 0) notes.push(`grammar: ${JSON.stringify(r.grammarErrors)}`)
  notes.push(
    `agent CPU: process.cpuUsage ${fmt(r.agentPct.total)}% of a core; Σ /proc/self/task threads differs by ` +
      `${fmt(r.threadAccountingGapPct, 1)}%${r.threadAccountingGapPct > 5 ? ' (threads that exited?)' : ''}`,
  )
  const e = r.errors
  if (e.loadgen > 0) notes.push(`load generator errors: ${formatErrors(r.loadgen.errors)}`)
  if (e.protocol + e.handler + e.sinkRejected > 0) {
    notes.push(`agent protocol errors ${e.protocol}, handler errors ${e.handler}, sink rejections ${e.sinkRejected}`)
  }
  return notes
}
