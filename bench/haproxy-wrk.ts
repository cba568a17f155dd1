// `npm run bench -- wrk`: HTTP load from wrk through a real HAProxy with the
// SPOE tracing filter, against the agent exporting to a counting OTLP sink:
// what a user of spoa-tracer pays, measured end to end, rerunnable by anyone.
//
// Processes, all on loopback with free ports, each stopped by PID (a shell
// command by process group) at the end, on error and on SIGINT (HAProxy and
// the processes through harness/: haproxy.ts, process.ts):
//   origin   a second HAProxy answering `http-request return status 200`
//            (haproxy/bench/origin.cfg): the cheapest origin there is;
//   haproxy  the HAProxy under test (haproxy/bench/proxy.cfg): one thread,
//            option httpclose, frontend -> backend -> origin, and per mode
//              none     no filter;
//              spoe     the shipped 9-span SPOE configuration haproxy/spoe.cfg
//                       (unique-id-format %[uuid], agent backend in mode tcp,
//                       HAProxy's default pipelining);
//              propagation  haproxy/spoe-propagation.cfg (the same 9 spans,
//                       joining and continuing traces);
//              compact  haproxy/spoe-compact.cfg with the frontend rules of
//                       haproxy/haproxy-compact.cfg (one message per request;
//                       an error when those files do not exist, or when
//                       proxy.cfg's copy of the rules is stale);
//              <mode>-unguarded  a SPOE mode without the fail-fast guards
//                       (harness/guards.ts), to A/B what they cost;
//              log      no SPOE: the frontend rules of
//                       haproxy/haproxy-compact-log.cfg, one RFC 5424 log
//                       record per traced request to the agent's log intake
//                       (UDP on 127.0.0.1); log10 the same at 10% sampling;
//              logtcp   the same records through HAProxy's ring, forwarded
//                       over TCP with octet counting (SPOA_LOG_TCP), many
//                       per write; logtcp10 at 10% sampling;
//              ot       HAProxy's in-process OpenTracing filter with the 9
//                       spans of spoe.cfg (haproxy/bench/ot.cfg; HAProxy
//                       built with USE_OT, the Datadog plugin of
//                       libdd-opentracing0 exporting to the sink); ot10 at
//                       10% (the filter's rate-limit);
//   agent    ours (bench/tracing-agent-process.ts: the real daemon, reporting
//            CPU per thread, RSS and counters), or any other SPOE agent given
//            with --agent 'command {port}', under exactly the same traffic;
//   sink     the counting OTLP/HTTP sink (bench/otlp-sink.ts): spans really
//            leave the agent and are counted;
//   wrk      the load: --connections over --threads for --duration seconds
//            with --latency, after a --warmup run.
//
// What is measured over the wrk window (the samples are taken just before wrk
// starts and just after it exits):
//   - wrk: requests/s, p50/p99 latency, socket errors, statuses above 399;
//   - HAProxy, from its own counters (process variables the
//     http-after-response rules of proxy.cfg add to, read with `get var` on
//     the stats socket; no log lines, which would cost HAProxy more than the
//     events): responses, non-2xx responses, responses whose SPOE processing
//     failed (the set-on-error variable of the SPOE file is set) and timed out
//     (it is 1);
//   - CPU per request of HAProxy, the agent (all its threads: export
//     included), the origin, the sink and wrk (/proc/<pid>/stat; wrk's from
//     this process's cutime once it has been reaped); the agent's RSS at the
//     end of the window and its peak;
//   - noise: the machine's busy time (/proc/stat, interrupts apart) minus
//     every process the harness started, itself included;
//   - after the window, once the agent has drained (bounded), spans received
//     by the sink per response HAProxy sent (9 for the spoe and ot modes);
//   - log modes, the end-to-end count: requests the rules traced (HAProxy's
//     proc.bench_traced) against trees the agent built from their records,
//     and what was lost on the way: records the agent rejected, datagrams
//     the kernel dropped on its socket, HAProxy's DroppedLogs (show info).
// --ab A,B alternates two modes for --rounds rounds (A B, B A, A B, ...) and
// prints each mode's medians and their ratio.

import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { checkBackendCopy, splitMode as splitGuards, UNGUARDED, writeUnguarded } from '../harness/guards.js'
import { findHaproxy, type Haproxy, haproxyVersion, startHaproxy, which } from '../harness/haproxy.js'
import { cli, getProcVars, waitServerUp } from '../harness/haproxy-stats.js'
import { freePort, waitForPort } from '../harness/ports.js'
import { guardChildren, type Proc, spawnTracked } from '../harness/process.js'
import { type Column, fmt, median, medianRecord, spread, table } from '../harness/report.js'
import { sleep } from '../harness/wait.js'
import { type Args, type BenchCommand, bool, cpuSched, num, str, UsageError } from './cli.js'
import { AGENT_SCRIPT, shippedNodeFlags } from './agent-launch.js'
import { JsonLineChild } from './json-line-child.js'
import type { CpuSched } from '../src/daemon/cpu-sched.js'
import type { SinkUsage } from './otlp-sink.js'
import { childrenCpuUs, clockTicksPerSec, groupUsage, type MachineCpu, type Mem, procCpuUs, procMem, readMachineCpu } from './proc-stats.js'
import type { TracingAgentUsage } from './tracing-agent-process.js'
import { runWrk, type WrkResult } from './wrk.js'

// ---- targets ---------------------------------------------------------------

/** Share of plain HAProxy's requests/s a SPOE mode must keep (the C agent: about 41% with the 9-span flow). */
const TARGET_KEEP_PCT: Record<string, number> = { spoe: 45, compact: 90, log: 75, log10: 93 }
const TARGET_AGENT_US_PER_REQUEST = 100
/** Share of the do-nothing agent's requests/s ours must keep, and how much higher its p50 may be, percent (issue 14). */
const TARGET_KEEP_NOOP_PCT = 95
const TARGET_P50_NOOP_PCT = 5
const TARGET_AGENT_RSS_MB = 120
/** Spans per request of a mode's flow, when known. */
const SPANS_PER_REQUEST: Record<string, number> = { spoe: 9, propagation: 9, ot: 9 }
/** What the fail-fast guards may cost the healthy path, percent (issue 11). */
const TARGET_GUARDS_COST_PCT = 1

// ---- paths -----------------------------------------------------------------

/** The project's root: this file is dist/bench/haproxy-wrk.js. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const ORIGIN_CFG = join(ROOT, 'haproxy/bench/origin.cfg')
const PROXY_CFG = join(ROOT, 'haproxy/bench/proxy.cfg')
/** The shipped configuration whose agent backend proxy.cfg copies. */
const SHIPPED_BACKEND_CFG = join(ROOT, 'haproxy/haproxy.cfg')
const SINK_SCRIPT = fileURLToPath(new URL('./otlp-sink.js', import.meta.url))
const THREAD_TAG_SCRIPT = fileURLToPath(new URL('./thread-tag.cjs', import.meta.url))
const OT_CFG = join(ROOT, 'haproxy/bench/ot.cfg')
/** Where Debian (libdd-opentracing0) and a source install put the Datadog tracer's OpenTracing plugin. */
const DD_PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/local/lib']
const DD_PLUGIN = 'libdd_opentracing_plugin.so'

interface ModeDef {
  /** The SPOE file (relative to the root), null for no filter. */
  spoe: string | null
  /** BENCH_PROFILE: a block of frontend rules in proxy.cfg, copied from `shipped`. */
  profile?: string
  /** The shipped HAProxy configuration whose frontend rules proxy.cfg copies. */
  shipped?: string
  /** Our agent receives HAProxy's log records instead of SPOE messages: datagrams (UDP), or HAProxy's ring forwarding them over TCP. */
  logIntake?: 'udp' | 'tcp'
  /** HAProxy's own OpenTracing filter, no agent. */
  ot?: true
  /** HAProxy environment the mode sets unless the caller's environment does (e.g. SPOA_SAMPLE_PERCENT). */
  env?: Record<string, string>
}

const MODES: Record<string, ModeDef> = {
  none: { spoe: null },
  spoe: { spoe: 'haproxy/spoe.cfg' },
  propagation: { spoe: 'haproxy/spoe-propagation.cfg', profile: 'propagation' },
  compact: { spoe: 'haproxy/spoe-compact.cfg', profile: 'compact', shipped: 'haproxy/haproxy-compact.cfg' },
  log: { spoe: null, profile: 'log', shipped: 'haproxy/haproxy-compact-log.cfg', logIntake: 'udp' },
  log10: { spoe: null, profile: 'log', shipped: 'haproxy/haproxy-compact-log.cfg', logIntake: 'udp', env: { SPOA_SAMPLE_PERCENT: '10' } },
  logtcp: { spoe: null, profile: 'log', shipped: 'haproxy/haproxy-compact-log.cfg', logIntake: 'tcp' },
  logtcp10: { spoe: null, profile: 'log', shipped: 'haproxy/haproxy-compact-log.cfg', logIntake: 'tcp', env: { SPOA_SAMPLE_PERCENT: '10' } },
  ot: { spoe: null, profile: 'ot', ot: true, env: { SPOA_SAMPLE_PERCENT: '100' } },
  ot10: { spoe: null, profile: 'ot', ot: true, env: { SPOA_SAMPLE_PERCENT: '10' } },
}

/**
 * Suffix of a SPOE mode answered by the do-nothing agent (bench/agent-process.ts:
 * decodes, ACKs, nothing else) instead of ours: `--ab spoe${'@noop'},spoe` puts
 * ours against the ceiling of any SPOE agent, the same traffic in one run.
 */
const NOOP = '@noop'
const NOOP_AGENT = { tcp: 'exec node dist/bench/agent-process.js --port {port}', unix: 'exec node dist/bench/agent-process.js --unix {unix}' }
/**
 * The do-nothing receiver of a log mode's records (`log@noop`, `logtcp@noop`):
 * UDP, a socket bound and never read (the kernel drops what overflows it: what
 * HAProxy pays is only its own work); TCP, a server that reads and discards.
 * Each also listens on TCP {port}, which is what the harness waits for.
 */
const NOOP_LOG_RECEIVER = {
  udp:
    `exec python3 -c 'import socket, time; p = int("{port}"); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p)); ` +
    `t = socket.socket(); t.bind(("127.0.0.1", p)); t.listen(8); time.sleep(1e9)'`,
  tcp: `exec node -e 'require("net").createServer((s) => { s.resume(); s.on("error", () => {}) }).listen(Number("{port}"), "127.0.0.1")'`,
}

/** A mode's parts: its base (MODES), whether the fail-fast guards stay, whether the do-nothing agent answers. */
function splitMode(m: string): { base: string; guards: boolean; noop: boolean } {
  const noop = m.endsWith(NOOP)
  return { ...splitGuards(noop ? m.slice(0, -NOOP.length) : m), noop }
}

/** Whether a mode runs a tracing process (our agent) or exports from HAProxy itself (ot). */
const traced = (def: ModeDef): boolean => def.spoe !== null || def.logIntake !== undefined || def.ot === true

/** The HAProxy variables proxy.cfg counts in (see there). */
const COUNTERS = ['bench_resp', 'bench_non2xx', 'bench_spoe_err', 'bench_spoe_tout', 'bench_traced'] as const
type Counters = Record<(typeof COUNTERS)[number], number>

// ---- options ---------------------------------------------------------------

const WRK_OPTIONS = {
  mode: {
    type: 'string',
    describe: `${Object.keys(MODES).join('|')}: the HAProxy configuration measured (default spoe); a SPOE mode + "${UNGUARDED}": without the fail-fast guards; + "${NOOP}": answered by the do-nothing agent`,
  },
  ab: {
    type: 'string',
    describe: `A,B: alternate two modes (e.g. none,spoe, spoe${UNGUARDED},spoe, or spoe${NOOP},spoe: ours against the do-nothing agent) for --rounds rounds; prints the ratio of medians`,
  },
  rounds: { type: 'number', default: 3, describe: 'runs per mode, each with a fresh HAProxy, agent and sink' },
  duration: { type: 'number', default: 15, describe: 'seconds of measured wrk load per run' },
  warmup: { type: 'number', default: 3, describe: 'seconds of wrk load before each measured run' },
  connections: { type: 'number', default: 8, describe: 'wrk --connections' },
  threads: { type: 'number', default: 1, describe: 'wrk --threads' },
  timeout: { type: 'number', default: 2, describe: 'wrk --timeout, seconds' },
  nbthread: { type: 'number', default: 1, describe: "HAProxy's nbthread (the origin keeps 1)" },
  agent: {
    type: 'string',
    describe:
      "another SPOE agent instead of ours: a shell command; {port} becomes its SPOP port ({unix} its socket " +
      "path with --unix), {otlp} the sink's traces URL (OTEL_EXPORTER_OTLP_ENDPOINT is set to the sink too)",
  },
  unix: { type: 'boolean', describe: 'HAProxy reaches the agent over a unix socket instead of TCP on 127.0.0.1' },
  workers: { type: 'number', default: 1, describe: 'our agent: export worker threads' },
  protocol: { type: 'string', default: 'http/protobuf', describe: 'our agent: http/protobuf or http/json' },
  'spoa-timeout': { type: 'string', describe: "HAProxy's SPOE `timeout processing` (SPOA_TIMEOUT_PROCESSING; default spoe.cfg's 500ms)" },
  'cpu-prof': { type: 'string', describe: 'our agent: node --cpu-prof --cpu-prof-dir DIR (one profile per thread and run)' },
  'log-read-pause': { type: 'number', describe: "our agent's --log-read-pause in ms (log modes over TCP; default: the agent's)" },
  'cpu-sched': { type: 'string', describe: "our agent's --cpu-sched: normal (the default), idle (the whole agent under SCHED_IDLE: only CPU time the rest leave) or tracing-idle (its tracing thread only)" },
  'agent-session': {
    type: 'string',
    describe:
      "where an --agent command and the do-nothing agent run: 'shared' (default), in this process's session, HAProxy's and our agent's too; " +
      "'own', a session of their own (setsid), which with the kernel's autogroups is a scheduling group of its own, as a separate service's cgroup is",
  },
  'node-args': { type: 'string', describe: "our agent: node options after those of bin/spoa-tracer's exec line, space-separated (e.g. '--max-semi-space-size=16', the default)" },
  json: { type: 'boolean', describe: 'print one JSON line per run and one summary line' },
} as const

interface Options {
  modes: string[]
  ab: boolean
  rounds: number
  durationS: number
  warmupS: number
  connections: number
  threads: number
  timeoutS: number
  nbthread: number
  agentCommand: string | undefined
  unix: boolean
  workers: number
  protocol: 'http/protobuf' | 'http/json'
  spoaTimeout: string | undefined
  cpuProfDir: string | undefined
  nodeArgs: string[]
  logReadPauseMs: number | undefined
  cpuSched: CpuSched
  agentSession: 'shared' | 'own'
  json: boolean
}

function checkMode(m: string): string {
  const { base, guards, noop } = splitMode(m)
  if (!(base in MODES)) throw new UsageError(`unknown mode "${m}": one of ${Object.keys(MODES).join(', ')}, or a SPOE mode + ${UNGUARDED} and/or ${NOOP}`)
  const def = MODES[base]!
  if (!guards && def.spoe === null) throw new UsageError(`mode ${m}: "${base}" has no SPOE filter, hence no guards to take off`)
  if (noop && def.spoe === null && def.logIntake === undefined) throw new UsageError(`mode ${m}: "${base}" has no agent to replace with a do-nothing one`)
  if (def.spoe !== null) checkBackendCopy(PROXY_CFG, SHIPPED_BACKEND_CFG)
  for (const file of [def.spoe, def.shipped]) {
    if (file && !existsSync(join(ROOT, file))) {
      throw new UsageError(`mode ${m} needs ${file}, which does not exist${m === 'compact' ? ' (yet: the compact profile is a later issue)' : ''}`)
    }
  }
  if (def.shipped) checkProfileCopy(m, def.shipped)
  return m
}

/** The rule lines of the first frontend of an HAProxy configuration, without bind, filter, unique-id-format, default_backend. */
function frontendRules(text: string): string[] {
  const out: string[] = []
  let inFrontend = false
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+/g, ' ').trim()
    if (/^(frontend|backend|listen|defaults|global|program|peers|resolvers|userlist)\b/.test(line)) {
      if (inFrontend) break
      inFrontend = line.startsWith('frontend')
      continue
    }
    if (!inFrontend || line === '' || line.startsWith('#')) continue
    if (/^(bind|filter spoe|unique-id-format|default_backend) /.test(line)) continue
    out.push(line)
  }
  return out
}

/**
 * proxy.cfg carries a copy of a shipped profile's frontend rules between
 * BEGIN/END markers (HAProxy has no include): refuse to measure a stale copy.
 */
function checkProfileCopy(mode: string, shipped: string): void {
  const want = frontendRules(readFileSync(join(ROOT, shipped), 'utf8'))
  const proxy = readFileSync(PROXY_CFG, 'utf8')
  const m = new RegExp(`# ---- BEGIN the frontend rules of ${shipped}[^\n]*\n([\\s\\S]*?)\n\\s*# ---- END the frontend rules`).exec(proxy)
  if (m === null) throw new Error(`haproxy/bench/proxy.cfg has no copy of the frontend rules of ${shipped} (mode ${mode})`)
  const have = frontendRules(`frontend copy\n${m[1]!}`)
  const n = Math.max(want.length, have.length)
  for (let i = 0; i < n; i++) {
    if (want[i] !== have[i]) {
      throw new Error(
        `mode ${mode}: haproxy/bench/proxy.cfg's copy of the frontend rules of ${shipped} is stale ` +
          `(rule ${i + 1}: ${shipped} has "${want[i] ?? '(nothing)'}", the copy "${have[i] ?? '(nothing)'}"); copy them again`,
      )
    }
  }
}

function agentSession(v: string | undefined): 'shared' | 'own' {
  if (v === undefined || v === 'shared' || v === 'own') return v ?? 'shared'
  throw new UsageError(`--agent-session: shared or own, not ${v}`)
}

function options(v: Args): Options {
  const ab = str(v, 'ab')
  let modes: string[]
  if (ab !== undefined) {
    if (str(v, 'mode') !== undefined) throw new UsageError('--mode and --ab exclude each other')
    modes = ab.split(',').map((s) => s.trim())
    if (modes.length !== 2 || modes[0] === modes[1]) throw new UsageError(`--ab takes two different modes, A,B: not "${ab}"`)
  } else {
    modes = [str(v, 'mode') ?? 'spoe']
  }
  modes.forEach(checkMode)
  const p = str(v, 'protocol')!
  const protocol = p === 'protobuf' ? 'http/protobuf' : p === 'json' ? 'http/json' : p
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') throw new UsageError(`--protocol: http/protobuf or http/json, not ${p}`)
  const connections = num(v, 'connections', 1)
  const threads = num(v, 'threads', 1)
  if (threads > connections) throw new UsageError('--threads must not exceed --connections (wrk needs a connection per thread)')
  const agentCommand = str(v, 'agent')
  const unix = bool(v, 'unix')
  const slot = unix ? '{unix}' : '{port}'
  if (agentCommand !== undefined && !agentCommand.includes(slot)) {
    throw new UsageError(`--agent: the command must contain ${slot}, where the harness puts the SPOP ${unix ? 'socket path' : 'port'}`)
  }
  const own = modes.filter((m) => MODES[splitMode(m).base]!.logIntake || MODES[splitMode(m).base]!.ot)
  if (agentCommand !== undefined && own.length > 0) throw new UsageError(`--agent: mode ${own[0]} has no SPOE agent to replace`)
  const prof = str(v, 'cpu-prof')
  if (prof !== undefined && agentCommand !== undefined) throw new UsageError('--cpu-prof profiles our agent, not an --agent command')
  const nodeArgs = (str(v, 'node-args') ?? '').split(/\s+/).filter((a) => a !== '')
  if (nodeArgs.length > 0 && agentCommand !== undefined) throw new UsageError('--node-args applies to our agent, not an --agent command')
  const pause = v['log-read-pause']
  if (pause !== undefined && (typeof pause !== 'number' || !(pause >= 0))) throw new UsageError('--log-read-pause: milliseconds, 0 or more')
  return {
    modes,
    ab: ab !== undefined,
    rounds: num(v, 'rounds', 1),
    durationS: num(v, 'duration', 1),
    warmupS: num(v, 'warmup', 0),
    connections,
    threads,
    timeoutS: num(v, 'timeout', 1),
    nbthread: num(v, 'nbthread', 1),
    agentCommand,
    unix,
    workers: num(v, 'workers', 1),
    protocol,
    spoaTimeout: str(v, 'spoa-timeout'),
    cpuProfDir: prof ? resolve(prof) : undefined,
    nodeArgs,
    logReadPauseMs: pause as number | undefined,
    cpuSched: cpuSched(v),
    agentSession: agentSession(str(v, 'agent-session')),
    json: bool(v, 'json'),
  }
}

// ---- the SPOE file ---------------------------------------------------------

interface SpoeFile {
  path: string
  /** The [section] the filter line names as its engine. */
  engine: string
  /** txn.<var-prefix>.<set-on-error>, or null when the file sets no error variable. */
  errVar: string | null
}

function readSpoeFile(mode: string, rel: string): SpoeFile {
  const path = join(ROOT, rel)
  const text = readFileSync(path, 'utf8').replace(/#.*$/gm, '')
  const engine = /^\s*\[([^\]\s]+)\]/m.exec(text)?.[1]
  if (engine === undefined) throw new Error(`${rel}: no [engine] section`)
  const agent = /^\s*spoe-agent\s+(\S+)/m.exec(text)?.[1]
  const backends = [...text.matchAll(/^\s*use-backend\s+(\S+)/gm)].map((m) => m[1])
  if (backends.some((b) => b !== 'spoa-tracer')) {
    throw new Error(`mode ${mode}: ${rel} uses backend ${backends.join(', ')}; haproxy/bench/proxy.cfg defines "spoa-tracer" only`)
  }
  const prefix = /^\s*option\s+var-prefix\s+(\S+)/m.exec(text)?.[1] ?? agent ?? engine
  const onError = /^\s*option\s+set-on-error\s+(\S+)/m.exec(text)?.[1]
  return { path, engine, errVar: onError ? `txn.${prefix}.${onError}` : null }
}

// ---- one run ---------------------------------------------------------------

interface Context {
  o: Options
  haproxyBin: string
  wrkBin: string
  originPid: number
  originPort: number
  tmp: string
}

interface Sample {
  atMs: number
  machine: MachineCpu | null
  /** This process (the harness), µs. */
  selfUs: number
  /** This process's reaped children (wrk), µs. */
  childrenUs: number
  haproxyUs: number
  originUs: number
  sinkUs: number
  agentUs: number
  agentMem: Mem
  agent: TracingAgentUsage | null
  sink: SinkUsage | null
  counters: Counters
}

export interface WrkRunResult {
  mode: string
  round: number
  windowS: number
  requests: number
  requestsPerSec: number
  latencyUs: WrkResult['latencyUs']
  wrkErrors: { socket: WrkResult['socketErrors']; status4xx5xx: number }
  /** HAProxy's counters over the window. */
  haproxy: { responses: number; non2xx: number; spoeErrors: number; spoeTimeouts: number }
  /** The same over the whole run (warm-up and the end included), read after the drain. */
  totals: { responses: number; non2xx: number; spoeErrors: number; spoeTimeouts: number }
  /** false when the SPOE file sets no error variable: SPOE errors cannot be counted. */
  spoeErrorsObservable: boolean
  /** CPU per request, µs. */
  usPerRequest: { haproxy: number; agent: number; agentMain: number; agentWorkers: number; agentOther: number; origin: number; sink: number; wrk: number }
  /** CPU per request of every process the harness started (HAProxy, agent, origin, sink, wrk, itself), µs. */
  systemUsPerRequest: number
  /** Percent of one core. */
  pct: { haproxy: number; agent: number; origin: number; sink: number; wrk: number; harness: number; others: number; irq: number; steal: number }
  /** Agent RSS sampled every 500 ms during the wrk window (/proc/<pid>/status): median ("steady") and largest, MB. */
  agentRssMb: number
  agentRssMaxMb: number
  /** At the end of the window. */
  agentRssEndMb: number
  /** VmHWM: the largest RSS of the agent's life so far (start and warm-up included), MB. */
  agentPeakRssMb: number
  /** Spans the sink received per response HAProxy sent, after the drain (NaN: no agent, or the sink got nothing). */
  spansPerRequest: number
  sinkSpans: number
  /**
   * Log modes: requests the rules traced (whole run), trees the agent built
   * from their records, and where records were lost. Null in other modes.
   */
  logIntake: {
    traced: number
    trees: number
    deliveredPct: number
    records: number
    untraced: number
    rejected: Record<string, number>
    kernelDrops: number
    haproxyDroppedLogs: number
    /** Records a full ring lost, as HAProxy told the agent ("N events dropped"). */
    ringDropped: number
    /** TCP reads of the agent, and those after which it rested (--log-read-pause). */
    tcpReads: number
    tcpRests: number
  } | null
  /** Our agent only (NaN otherwise): NOTIFY frames per response, and its error counters. */
  notifyPerRequest: number
  agent: {
    ours: boolean
    drained: boolean
    drainMs: number
    protocolErrors: number
    handlerErrors: number
    dropped: Record<string, number>
    rejected: Record<string, number>
    treesReaped: number
    /** Open trees ended by the graceful close: requests cut short by the end of the load. */
    treesEndedAtShutdown: number
    /** SPOP connections open at the end of the window (HAProxy's applets), and the JS heap then, MB. */
    connections: number
    heapUsedMb: number
  } | null
}

const cpuOf = (u: { userUs: number; systemUs: number }): number => u.userUs + u.systemUs
const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)

function mergeCounts(...maps: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of maps) for (const [k, v] of Object.entries(m)) if (v > 0) out[k] = (out[k] ?? 0) + v
  return out
}

async function readCounters(sock: string): Promise<Counters> {
  const v = await getProcVars(sock, COUNTERS)
  const out = {} as Counters
  for (const c of COUNTERS) {
    const x = v[c]
    if (x === undefined) throw new Error(`HAProxy has no variable proc.${c} (is haproxy/bench/proxy.cfg the one running?)`)
    out[c] = x
  }
  return out
}

interface Running {
  haproxy: Haproxy | null
  agent: JsonLineChild | null
  extAgent: Proc | null
  sink: JsonLineChild | null
}

async function sample(ctx: Context, r: Running): Promise<Sample> {
  const agentP = r.agent ? r.agent.request<TracingAgentUsage>('usage', 'usage') : Promise.resolve(null)
  const sinkP = r.sink ? r.sink.request<SinkUsage>('usage', 'usage') : Promise.resolve(null)
  const [agent, sink, counters] = await Promise.all([agentP, sinkP, readCounters(r.haproxy!.stats)])
  const ext = r.extAgent ? groupUsage(r.extAgent.pid) : null
  const self = process.cpuUsage()
  return {
    atMs: performance.now(),
    machine: readMachineCpu(),
    selfUs: self.user + self.system,
    childrenUs: childrenCpuUs(),
    haproxyUs: procCpuUs(r.haproxy!.pid),
    originUs: procCpuUs(ctx.originPid),
    sinkUs: r.sink ? procCpuUs(r.sink.pid) : 0,
    agentUs: agent ? cpuOf(agent) : ext ? ext.cpuUs : 0,
    agentMem: agent ? { rssBytes: agent.rssBytes, peakRssBytes: agent.peakRssBytes } : ext ? ext.mem : { rssBytes: 0, peakRssBytes: 0 },
    agent,
    sink,
    counters,
  }
}

/** Main thread and export worker CPU between two usage reports of our agent, µs. */
function agentSplit(a0: TracingAgentUsage, a1: TracingAgentUsage): { main: number; workers: number } {
  const before = new Map(a0.threads.map((t) => [t.tid, t]))
  let main = 0
  let workers = 0
  for (const t of a1.threads) {
    const t0 = before.get(t.tid)
    const dt = cpuOf(t) - (t0 ? cpuOf(t0) : 0)
    if (t.role === 'main') main += dt
    else if (t.role === 'worker') workers += dt
  }
  return { main, workers }
}

/**
 * After the load: waits (bounded) until our agent has applied every NOTIFY
 * (the tracing thread may be behind), its queue is empty, nothing is in
 * flight and the sink holds what it exported; for another agent, until the
 * sink holds `expected` spans or has received nothing new for 6 s.
 */
async function drain(r: Running, expected: number): Promise<{ ok: boolean; ms: number; agent: TracingAgentUsage | null; sink: SinkUsage | null }> {
  const t0 = Date.now()
  const bound = 20_000
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const [a, s] = await Promise.all([
      r.agent ? r.agent.request<TracingAgentUsage>('usage', 'usage') : Promise.resolve(null),
      r.sink ? r.sink.request<SinkUsage>('usage', 'usage') : Promise.resolve(null),
    ])
    let ok: boolean
    if (a) ok = a.tracing.pending === 0 && a.export.queueDepth === 0 && a.export.inFlight === 0 && (s === null || s.spans === a.export.spansExported)
    else {
      const spans = s?.spans ?? 0
      if (spans !== last) {
        last = spans
        lastChange = Date.now()
      }
      ok = spans >= expected || Date.now() - lastChange >= 6000
    }
    const ms = Date.now() - t0
    if (ok || ms >= bound) return { ok, ms, agent: a, sink: s }
    await sleep(100)
  }
}

/**
 * Starts the sink and the agent; returns the agent's address in HAProxy's
 * syntax (SPOP), or the HAProxy environment that points at it (log intake)
 * or at the sink (ot).
 */
async function startAgent(ctx: Context, r: Running, mode: string, round: number): Promise<string | Record<string, string>> {
  const o = ctx.o
  const def = MODES[splitMode(mode).base]!
  r.sink = await JsonLineChild.start({ name: 'the OTLP sink', script: SINK_SCRIPT })
  if (def.ot) return otEnv(ctx, r.sink.port, `${mode}-${round}`)
  const base = `http://127.0.0.1:${r.sink.port}`
  const traces = `${base}/v1/traces`
  const unix = o.unix ? join(ctx.tmp, `agent-${mode}-${round}.sock`) : null
  const noop = splitMode(mode).noop
  const agentCommand = noop ? (def.logIntake ? NOOP_LOG_RECEIVER[def.logIntake] : NOOP_AGENT[unix !== null ? 'unix' : 'tcp']) : o.agentCommand
  if (agentCommand !== undefined) {
    const port = unix ?? (await freePort())
    const command = agentCommand
      .replaceAll(unix !== null ? '{unix}' : '{port}', String(port))
      .replaceAll('{otlp}', traces)
    const p = spawnTracked({
      name: `the agent (${command})`,
      command: '/bin/sh',
      args: ['-c', command],
      group: true,
      session: o.agentSession === 'own' ? 'own' : 'ours',
      cwd: ROOT,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: base, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces },
    })
    r.extAgent = p
    try {
      await waitForPort(port, 30_000, () => !p.hasExited(), 'the agent')
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${p.tail()}`)
    }
    if (def.logIntake === 'udp') return { SPOA_LOG_TARGET: `127.0.0.1:${port}` }
    if (def.logIntake === 'tcp') return { SPOA_LOG_TCP: `127.0.0.1:${port}` }
    return unix !== null ? `unix@${unix}` : `127.0.0.1:${port}`
  }
  const prof = o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : []
  r.agent = await JsonLineChild.start({
    name: `the tracing agent (${mode})`,
    script: AGENT_SCRIPT,
    args: [
      ...(unix !== null ? ['--unix', unix] : ['--host', '127.0.0.1', '--port', '0']),
      ...(def.logIntake ? ['--log-intake', `${def.logIntake}://127.0.0.1:0`] : []),
      ...(def.logIntake && o.logReadPauseMs !== undefined ? ['--log-read-pause', String(o.logReadPauseMs)] : []),
      '--cpu-sched', o.cpuSched,
      '--exporter', 'otlp',
      '--protocol', o.protocol,
      '--endpoint', traces,
      '--workers', String(o.workers),
      '--clk-tck', String(clockTicksPerSec()),
    ],
    nodeArgs: [...shippedNodeFlags(), ...o.nodeArgs, ...prof, '--require', THREAD_TAG_SCRIPT],
    timeoutMs: 30_000,
  })
  if (def.logIntake === 'udp') return { SPOA_LOG_TARGET: `127.0.0.1:${String(r.agent.listening.logPort)}` }
  if (def.logIntake === 'tcp') return { SPOA_LOG_TCP: `127.0.0.1:${String(r.agent.listening.logPort)}` }
  return unix !== null ? `unix@${unix}` : `127.0.0.1:${r.agent.port}`
}

/**
 * The ot mode's files in the run's directory: a copy of haproxy/bench/ot.cfg
 * beside a link to the Datadog plugin (the filter opens `plugin` relative to
 * HAProxy's working directory, which the run sets to this one), and the
 * plugin's JSON pointing at the sink.
 */
function otEnv(ctx: Context, sinkPort: number, tag: string): Record<string, string> {
  const dir = join(ctx.tmp, `ot-${tag}`)
  mkdirSync(dir, { recursive: true })
  copyFileSync(OT_CFG, join(dir, 'ot.cfg'))
  symlinkSync(ddPlugin()!, join(dir, DD_PLUGIN))
  const json = join(dir, 'dd.json')
  writeFileSync(json, JSON.stringify({ service: 'haproxy', agent_host: '127.0.0.1', agent_port: sinkPort }))
  return { BENCH_OT_CONF: join(dir, 'ot.cfg'), BENCH_OT_TRACER_CONFIG: json }
}

function ddPlugin(): string | null {
  const env = process.env.BENCH_OT_PLUGIN
  if (env) return existsSync(env) ? env : null
  for (const d of DD_PLUGIN_DIRS) if (existsSync(join(d, DD_PLUGIN))) return join(d, DD_PLUGIN)
  return null
}

/** Refuses the ot modes where they cannot run: HAProxy without USE_OT, no tracer plugin. */
function checkOt(haproxyBin: string, modes: readonly string[]): void {
  const ot = modes.find((m) => MODES[splitMode(m).base]!.ot)
  if (ot === undefined) return
  const vv = execFileSync(haproxyBin, ['-vv'], { encoding: 'utf8', timeout: 10_000 })
  if (!/\+OT\b/.test(vv)) throw new UsageError(`mode ${ot}: ${haproxyBin} is built without the OpenTracing filter (no +OT in haproxy -vv; Debian's 2.6 has it)`)
  if (ddPlugin() === null) {
    throw new UsageError(`mode ${ot}: no ${DD_PLUGIN} (apt-get install libdd-opentracing0, or set BENCH_OT_PLUGIN to the plugin's path)`)
  }
}

async function oneRun(ctx: Context, mode: string, round: number): Promise<WrkRunResult> {
  const o = ctx.o
  const { base, guards } = splitMode(mode)
  const def = MODES[base]!
  const spoeRel = def.spoe
  const spoe = spoeRel ? readSpoeFile(mode, spoeRel) : null
  let proxyCfg = PROXY_CFG
  if (spoe && !guards) {
    // The same files without the srv_is_up() conditions (the backend: BENCH_GUARDS=0 below).
    const spoeCopy = writeUnguarded(spoe.path, ctx.tmp)
    const proxyCopy = writeUnguarded(PROXY_CFG, ctx.tmp)
    spoe.path = spoeCopy.path
    if (def.profile === 'compact') proxyCfg = proxyCopy.path
    const removed = spoeCopy.removed + (def.profile === 'compact' ? proxyCopy.removed : 0)
    if (removed === 0) throw new Error(`mode ${mode}: no fail-fast guard found to take off (${spoeRel}${def.profile === 'compact' ? ', proxy.cfg' : ''})`)
  }
  const tracer = traced(def)
  const r: Running = { haproxy: null, agent: null, extAgent: null, sink: null }
  const stopWaitMs = o.cpuProfDir ? 60_000 : 15_000
  try {
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(def.env ?? {})) env[k] = process.env[k] ?? v
    if (def.profile !== undefined) env.BENCH_PROFILE = def.profile
    if (!spoe && tracer) Object.assign(env, await startAgent(ctx, r, mode, round))
    if (spoe) {
      const agentAddr = (await startAgent(ctx, r, mode, round)) as string
      env.SPOE_CONF = spoe.path
      env.SPOE_ENGINE = spoe.engine
      // A variable nothing sets, when the SPOE file sets none: errors are then not observable.
      env.SPOE_ERR_VAR = spoe.errVar ?? 'txn.bench.never_set'
      env.AGENT_ADDR = agentAddr
      if (o.spoaTimeout !== undefined) env.SPOA_TIMEOUT_PROCESSING = o.spoaTimeout
      env.BENCH_GUARDS = guards ? '1' : '0'
    }
    env.ORIGIN_ADDR = `127.0.0.1:${ctx.originPort}`
    env.BENCH_NBTHREAD = String(o.nbthread)
    // ot: the filter opens its plugin relative to the working directory (addons/ot/src/opentracing.c).
    const cwd = env.BENCH_OT_CONF !== undefined ? dirname(env.BENCH_OT_CONF) : undefined
    r.haproxy = await startHaproxy({ name: `HAProxy (${mode})`, bin: ctx.haproxyBin, config: proxyCfg, env, bind: (p) => ({ BENCH_BIND: `127.0.0.1:${p}` }), ...(cwd !== undefined ? { cwd } : {}) })
    const sock = r.haproxy.stats
    if (spoe) await waitServerUp(sock, 'spoa-tracer', 'agent', 10_000)

    const url = `http://127.0.0.1:${r.haproxy.port}/`
    const wrkOpts = { bin: ctx.wrkBin, url, threads: o.threads, connections: o.connections, timeoutS: o.timeoutS }
    if (o.warmupS > 0) await runWrk({ ...wrkOpts, durationS: o.warmupS })
    const s0 = await sample(ctx, r)
    // The agent's RSS over the window, read from /proc (nothing asked of the agent itself).
    const agentPid = r.agent?.pid ?? r.extAgent?.pid ?? -1
    const rssSamples: number[] = []
    const readRss = (): void => {
      if (agentPid <= 0) return
      const mem = r.agent ? procMem(agentPid) : groupUsage(agentPid).mem
      if (mem.rssBytes > 0) rssSamples.push(mem.rssBytes / 2 ** 20)
    }
    readRss()
    const rssTimer = setInterval(readRss, 500)
    let w: WrkResult
    try {
      w = await runWrk({ ...wrkOpts, durationS: o.durationS })
    } finally {
      clearInterval(rssTimer)
    }
    readRss()
    const s1 = await sample(ctx, r)

    // Spans of every answered request, once the agent has drained.
    // (ot at another rate than 100%: as many as arrive, until 6 s without a new one.)
    const perRequest = SPANS_PER_REQUEST[base]
    const expected =
      splitMode(mode).noop ? 0 : perRequest !== undefined && (env.SPOA_SAMPLE_PERCENT ?? '100') === '100' ? perRequest * s1.counters.bench_resp : def.ot ? Infinity : 0
    const dr = tracer ? await drain(r, expected) : null
    const totals = await readCounters(sock)
    const droppedLogs = def.logIntake ? Number(/^DroppedLogs: (\d+)/m.exec(await cli(sock, 'show info'))?.[1] ?? NaN) : NaN

    // HAProxy first (no more events), then the agent (graceful: open trees ended, queue flushed), then the sink.
    await r.haproxy.stop(5000)
    let closed: TracingAgentUsage | null = null
    if (r.agent) {
      try {
        closed = await r.agent.request<TracingAgentUsage>('close', 'closed', 30_000)
        await r.agent.waitExit(stopWaitMs)
      } catch (err) {
        console.error(`closing the tracing agent: ${(err as Error).message}`)
      }
    }

    const windowUs = (s1.atMs - s0.atMs) * 1000
    const n = w.requests
    const per = (us: number): number => (n > 0 ? us / n : NaN)
    const pct = (us: number): number => (us / windowUs) * 100
    const d = (f: (s: Sample) => number): number => f(s1) - f(s0)
    const haproxyUs = d((s) => s.haproxyUs)
    const originUs = d((s) => s.originUs)
    const sinkUs = d((s) => s.sinkUs)
    const agentUs = d((s) => s.agentUs)
    const wrkUs = d((s) => s.childrenUs)
    const selfUs = d((s) => s.selfUs)
    const split = s0.agent && s1.agent ? agentSplit(s0.agent, s1.agent) : { main: NaN, workers: NaN }
    const m0 = s0.machine
    const m1 = s1.machine
    const ours = haproxyUs + originUs + sinkUs + agentUs + wrkUs + selfUs
    // Interrupt time is not taken out of the machine's busy time: with tick-based accounting and
    // no CONFIG_IRQ_TIME_ACCOUNTING (Debian's cloud kernels), a tick spent in a softirq is charged
    // to the process it interrupted as well, so our loopback traffic is already inside `ours`.
    const others = m0 && m1 ? m1.busyUs - m0.busyUs - ours : NaN
    const c = (k: keyof Counters): number => s1.counters[k] - s0.counters[k]
    const da = dr?.agent ?? null
    const sinkSpans = dr?.sink?.spans ?? 0
    const li = da?.logIntake ?? null
    const hasAgent = tracer && !def.ot
    return {
      mode,
      round,
      windowS: windowUs / 1e6,
      requests: n,
      requestsPerSec: w.requestsPerSec,
      latencyUs: w.latencyUs,
      wrkErrors: { socket: w.socketErrors, status4xx5xx: w.non2xx3xx },
      haproxy: { responses: c('bench_resp'), non2xx: c('bench_non2xx'), spoeErrors: c('bench_spoe_err'), spoeTimeouts: c('bench_spoe_tout') },
      totals: {
        responses: totals.bench_resp,
        non2xx: totals.bench_non2xx,
        spoeErrors: totals.bench_spoe_err,
        spoeTimeouts: totals.bench_spoe_tout,
      },
      spoeErrorsObservable: spoe === null || spoe.errVar !== null,
      usPerRequest: {
        haproxy: per(haproxyUs),
        agent: hasAgent ? per(agentUs) : NaN,
        agentMain: per(split.main),
        agentWorkers: per(split.workers),
        agentOther: per(agentUs - split.main - split.workers),
        origin: per(originUs),
        sink: tracer ? per(sinkUs) : NaN,
        wrk: per(wrkUs),
      },
      systemUsPerRequest: per(ours),
      pct: {
        haproxy: pct(haproxyUs),
        agent: hasAgent ? pct(agentUs) : NaN,
        origin: pct(originUs),
        sink: tracer ? pct(sinkUs) : NaN,
        wrk: pct(wrkUs),
        harness: pct(selfUs),
        // Jiffies are coarse (10 ms): a small negative value is rounding, not negative work.
        others: Number.isNaN(others) ? NaN : Math.max(0, pct(others)),
        irq: m0 && m1 ? pct(m1.irqUs - m0.irqUs) : NaN,
        steal: m0 && m1 ? pct(m1.stealUs - m0.stealUs) : NaN,
      },
      agentRssMb: hasAgent ? median(rssSamples) : NaN,
      agentRssMaxMb: hasAgent && rssSamples.length > 0 ? Math.max(...rssSamples) : NaN,
      agentRssEndMb: hasAgent ? s1.agentMem.rssBytes / 2 ** 20 : NaN,
      agentPeakRssMb: hasAgent ? s1.agentMem.peakRssBytes / 2 ** 20 : NaN,
      spansPerRequest: tracer && totals.bench_resp > 0 ? sinkSpans / totals.bench_resp : NaN,
      sinkSpans,
      notifyPerRequest: da && totals.bench_resp > 0 ? da.agent.notifyReceived / totals.bench_resp : NaN,
      logIntake:
        def.logIntake && li !== null
          ? {
              traced: totals.bench_traced,
              trees: li.traced,
              deliveredPct: totals.bench_traced > 0 ? (li.traced / totals.bench_traced) * 100 : NaN,
              records: li.records,
              untraced: li.untraced,
              rejected: li.rejected,
              kernelDrops: li.kernelDrops,
              haproxyDroppedLogs: droppedLogs,
              ringDropped: li.haproxyDropped,
              tcpReads: li.tcpReads,
              tcpRests: li.tcpRests,
            }
          : null,
      agent: tracer
        ? {
            ours: r.agent !== null,
            drained: dr?.ok ?? false,
            drainMs: dr?.ms ?? 0,
            protocolErrors: da?.agent.protocolErrors ?? 0,
            handlerErrors: da?.agent.handlerErrors ?? 0,
            dropped: da ? mergeCounts(da.export.spansDropped, da.tracing.spansDropped) : {},
            rejected: da ? mergeCounts(da.tracing.messagesRejected, da.tracing.argumentErrors) : {},
            treesReaped: da?.tracing.treesReaped ?? 0,
            treesEndedAtShutdown: closed?.tracing.treesEndedAtShutdown ?? NaN,
            connections: s1.agent?.agent.connectionsOpen ?? NaN,
            heapUsedMb: s1.agent ? s1.agent.heapUsedBytes / 2 ** 20 : NaN,
          }
        : null,
    }
  } finally {
    await r.haproxy?.stop(5000)
    await r.agent?.stop(stopWaitMs)
    await r.extAgent?.stop(10_000)
    await r.sink?.stop(5000)
  }
}

// ---- report ----------------------------------------------------------------

type Col = Column<WrkRunResult>

const f1 = (n: number): string => fmt(n, 1)

const LOAD: Col[] = [
  ['req/s', 8, (r) => fmt(r.requestsPerSec)],
  ['p50 µs', 7, (r) => fmt(r.latencyUs.p50)],
  ['p99 µs', 7, (r) => fmt(r.latencyUs.p99)],
  ['non-2xx', 7, (r) => fmt(r.haproxy.non2xx)],
  ['sock err', 8, (r) => fmt(r.wrkErrors.socket.total)],
  ['SPOE err', 8, (r) => (r.agent === null ? '-' : r.spoeErrorsObservable ? fmt(r.totals.spoeErrors) : 'n/a')],
  ['SPOE tmo', 8, (r) => (r.agent === null ? '-' : r.spoeErrorsObservable ? fmt(r.totals.spoeTimeouts) : 'n/a')],
  ['spans/req', 9, (r) => (r.agent === null ? '-' : fmt(r.spansPerRequest, 3))],
  ['RSS MB', 6, (r) => (r.agent === null ? '-' : fmt(r.agentRssMb))],
  ['max', 4, (r) => (r.agent === null ? '-' : fmt(r.agentRssMaxMb))],
  ['peak', 4, (r) => (r.agent === null ? '-' : fmt(r.agentPeakRssMb))],
]

const CPU: Col[] = [
  ['HAProxy µs/req', 14, (r) => f1(r.usPerRequest.haproxy)],
  ['%core', 5, (r) => fmt(r.pct.haproxy)],
  ['agent µs/req', 12, (r) => (r.agent === null ? '-' : f1(r.usPerRequest.agent))],
  ['main', 5, (r) => (r.agent?.ours ? f1(r.usPerRequest.agentMain) : '-')],
  ['workers', 7, (r) => (r.agent?.ours ? f1(r.usPerRequest.agentWorkers) : '-')],
  ['other', 5, (r) => (r.agent?.ours ? f1(r.usPerRequest.agentOther) : '-')],
  ['%core', 5, (r) => (r.agent === null ? '-' : fmt(r.pct.agent))],
  ['origin µs/req', 13, (r) => f1(r.usPerRequest.origin)],
  ['sink µs/req', 11, (r) => (r.agent === null ? '-' : f1(r.usPerRequest.sink))],
  ['wrk µs/req', 10, (r) => f1(r.usPerRequest.wrk)],
  ['all µs/req', 10, (r) => f1(r.systemUsPerRequest)],
  ['others %core', 12, (r) => fmt(r.pct.others)],
  ['irq %', 5, (r) => fmt(r.pct.irq)],
]

/** Every numeric field's median over the runs of one mode (counts of errors: their sum; the largest RSS: the max). */
function medianResult(rs: readonly WrkRunResult[]): WrkRunResult {
  const rules = {
    wrkErrors: 'sum',
    'haproxy.non2xx': 'sum',
    'haproxy.spoeErrors': 'sum',
    'haproxy.spoeTimeouts': 'sum',
    totals: 'sum',
    agentRssMaxMb: 'max',
    agentPeakRssMb: 'max',
    logIntake: 'base',
    agent: 'base',
  } as const
  return { ...medianRecord(rs, rules), round: 0 }
}

/** The commit measured, and whether src/ differs from it (the agent's code). */
function revision(): string {
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const head = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--', 'src').split('\n').filter((l) => l !== '').length
    return `code ${head}${dirty > 0 ? ` + ${dirty} uncommitted change(s) in src/` : ''}`
  } catch {
    return 'code: not a git checkout'
  }
}

function describe(ctx: Context): string {
  const o = ctx.o
  const agent = o.agentCommand
    ? `agent: ${o.agentCommand}`
    : `agent: ours (the daemon in bench/tracing-agent-process.ts), OTLP ${o.protocol}, ${o.workers} export worker(s)` +
      (o.nodeArgs.length > 0 ? `, node ${o.nodeArgs.join(' ')}` : '') +
      (o.logReadPauseMs !== undefined ? `, --log-read-pause ${o.logReadPauseMs}` : '') +
      (o.cpuSched !== 'normal' ? `, --cpu-sched ${o.cpuSched}` : '') +
      (o.unix ? ', over a unix socket' : ', over TCP on 127.0.0.1')
  const session = `; agents started by command (@noop, --agent) in ${o.agentSession === 'own' ? 'sessions of their own' : "HAProxy's session"}`
  return [
    `wrk through HAProxy: ${o.ab ? `A/B ${o.modes.join(' vs ')}, ${o.rounds} round(s) alternating` : `mode ${o.modes[0]}, ${o.rounds} run(s)`}; ` +
      `wrk -t${o.threads} -c${o.connections} -d${o.durationS}s --latency after a ${o.warmupS} s warm-up; ` +
      `HAProxy nbthread ${o.nbthread}, option httpclose; ${agent}${session}`,
    `${haproxyVersion(ctx.haproxyBin)}; node ${process.version}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); ${revision()}; ${new Date().toISOString()}`,
  ].join('\n')
}

function runLine(r: WrkRunResult): string {
  const parts = [
    `${r.mode} round ${r.round}: ${fmt(r.requestsPerSec)} req/s, p50 ${fmt(r.latencyUs.p50)} µs, p99 ${fmt(r.latencyUs.p99)} µs`,
    `HAProxy ${f1(r.usPerRequest.haproxy)} µs/req (${fmt(r.pct.haproxy)}% of a core)`,
  ]
  if (r.agent) {
    parts.push(
      `agent ${f1(r.usPerRequest.agent)} µs/req (${fmt(r.pct.agent)}%), RSS ${fmt(r.agentRssMb)} MB (window max ${fmt(r.agentRssMaxMb)}, peak ${fmt(r.agentPeakRssMb)})`,
      `${fmt(r.spansPerRequest, 3)} spans/req`,
      r.spoeErrorsObservable ? `SPOE errors ${fmt(r.totals.spoeErrors)}, timeouts ${fmt(r.totals.spoeTimeouts)}` : 'SPOE errors not observable',
    )
  }
  parts.push(`others ${fmt(r.pct.others)}% of a core`)
  return parts.join('; ')
}

function runNotes(r: WrkRunResult): string[] {
  const notes: string[] = []
  const s = r.wrkErrors.socket
  if (s.total > 0) notes.push(`wrk socket errors: connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}`)
  if (r.totals.non2xx > 0) notes.push(`HAProxy sent ${r.totals.non2xx} non-2xx responses`)
  if (Math.abs(r.haproxy.responses - r.requests) > r.requests * 0.01 + 16) {
    notes.push(`HAProxy counted ${r.haproxy.responses} responses in the window, wrk ${r.requests} requests`)
  }
  const a = r.agent
  if (a) {
    if (!a.drained) notes.push(`the agent did not drain within the bound (${fmt(a.drainMs)} ms)`)
    if (a.ours) {
      notes.push(
        `agent: ${fmt(r.notifyPerRequest, 2)} NOTIFY/request on ${fmt(a.connections)} SPOP connection(s), ` +
          `JS heap ${fmt(a.heapUsedMb)} MB, drained in ${fmt(a.drainMs)} ms, ` +
          `${fmt(a.treesEndedAtShutdown)} open trees ended at close (requests cut short by the end of the load)`,
      )
    }
    if (a.protocolErrors + a.handlerErrors > 0) notes.push(`agent protocol errors ${a.protocolErrors}, handler errors ${a.handlerErrors}`)
    if (sum(a.dropped) > 0) notes.push(`spans dropped: ${JSON.stringify(a.dropped)}`)
    if (sum(a.rejected) > 0) notes.push(`messages rejected / argument errors: ${JSON.stringify(a.rejected)}`)
    if (a.treesReaped > 0) notes.push(`trees reaped: ${a.treesReaped}`)
  }
  const l = r.logIntake
  if (l) {
    notes.push(
      `log intake: ${fmt(l.trees)} trees from ${fmt(l.traced)} traced requests (${fmt(l.deliveredPct, 3)}%), ${fmt(l.records)} records ` +
        `(${fmt(l.untraced)} of untraced requests), rejected ${JSON.stringify(l.rejected)}, kernel drops ${fmt(l.kernelDrops)}, HAProxy DroppedLogs ${fmt(l.haproxyDroppedLogs)}, ` +
        `dropped by the full ring ${fmt(l.ringDropped)}` +
        (l.tcpReads > 0 ? `; ${fmt(l.tcpReads)} TCP reads (${fmt(l.records / l.tcpReads, 1)} records each), ${fmt(l.tcpRests)} rests` : ''),
    )
  }
  return notes
}

function verdicts(o: Options, byMode: Map<string, WrkRunResult[]>): string[] {
  const lines: string[] = []
  const med = new Map([...byMode].map(([m, rs]) => [m, medianResult(rs)]))
  if (o.ab) {
    const [a, b] = o.modes as [string, string]
    const ma = med.get(a)!
    const mb = med.get(b)!
    const keep = (mb.requestsPerSec / ma.requestsPerSec) * 100
    const ra = byMode.get(a)!
    const rb = byMode.get(b)!
    const perRound = ra.map((x, i) => (rb[i] ? `${fmt((rb[i]!.requestsPerSec / x.requestsPerSec) * 100, 1)}%` : '')).join(', ')
    lines.push(
      `${b} keeps ${fmt(keep, 1)}% of ${a}'s requests/s (medians ${fmt(mb.requestsPerSec)} / ${fmt(ma.requestsPerSec)}; per round ${perRound}); ` +
        `HAProxy CPU per request ${f1(ma.usPerRequest.haproxy)} -> ${f1(mb.usPerRequest.haproxy)} µs (x${fmt(mb.usPerRequest.haproxy / ma.usPerRequest.haproxy, 2)})`,
    )
    lines.push(
      `CPU-bound estimate (noise-free): every process in the path spends ${f1(ma.systemUsPerRequest)} µs per request with ${a}, ` +
        `${f1(mb.systemUsPerRequest)} with ${b}: on the same cores ${b} would keep ${fmt((ma.systemUsPerRequest / mb.systemUsPerRequest) * 100, 1)}% of ${a}'s requests/s`,
    )
    const [sa, sb] = [splitMode(a), splitMode(b)]
    if (sa.base === sb.base && sa.guards !== sb.guards) {
      const [g, u] = sa.guards ? [ma, mb] : [mb, ma]
      const rpsCost = (1 - g.requestsPerSec / u.requestsPerSec) * 100
      const cpuCost = (g.usPerRequest.haproxy / u.usPerRequest.haproxy - 1) * 100
      lines.push(
        `target (${sa.base}): the fail-fast guards cost the healthy path under ${TARGET_GUARDS_COST_PCT}%: ` +
          `${rpsCost < TARGET_GUARDS_COST_PCT ? 'met' : 'NOT met'} (requests/s ${fmt(rpsCost, 2)}% lower with them, ` +
          `HAProxy CPU per request ${fmt(cpuCost, 2)}% higher; a negative cost is noise in their favour)`,
      )
    }
    if (sa.noop !== sb.noop && sa.base === sb.base && sa.guards === sb.guards) {
      const [ours, noop] = sa.noop ? [mb, ma] : [ma, mb]
      const keepNoop = (ours.requestsPerSec / noop.requestsPerSec) * 100
      const p50 = (ours.latencyUs.p50 / noop.latencyUs.p50 - 1) * 100
      if (MODES[sa.base]!.logIntake) {
        // A log mode's do-nothing receiver: what our agent's CPU costs HAProxy on shared cores (no target of its own).
        lines.push(`against the do-nothing receiver (${sa.base}): ours keeps ${fmt(keepNoop, 1)}% of its requests/s; p50 ${p50 >= 0 ? '+' : ''}${fmt(p50, 1)}%`)
      } else lines.push(
        `against the do-nothing agent (${sa.base}): ours keeps ${fmt(keepNoop, 1)}% of its requests/s (target >= ${TARGET_KEEP_NOOP_PCT}%: ` +
          `${keepNoop >= TARGET_KEEP_NOOP_PCT ? 'met' : 'NOT met'}); p50 ${p50 >= 0 ? '+' : ''}${fmt(p50, 1)}% (target within ${TARGET_P50_NOOP_PCT}%: ` +
          `${p50 <= TARGET_P50_NOOP_PCT ? 'met' : 'NOT met'})`,
      )
    }
    const target = TARGET_KEEP_PCT[b]
    if (a === 'none' && target !== undefined) {
      lines.push(
        `target: ${b} keeps >= ${target}% of plain HAProxy's requests/s: ${keep >= target ? 'met' : 'NOT met'} ` +
          `(${fmt(keep, 1)}%, ${keep >= target ? '+' : ''}${fmt(keep - target, 1)} points)`,
      )
    }
  }
  for (const [mode, m] of med) {
    const def = MODES[splitMode(mode).base]!
    if (!traced(def)) continue
    const rs = byMode.get(mode)!
    if (def.logIntake && !splitMode(mode).noop) {
      const tracedN = rs.reduce((a, r) => a + (r.logIntake?.traced ?? 0), 0)
      const trees = rs.reduce((a, r) => a + (r.logIntake?.trees ?? 0), 0)
      const pctDelivered = tracedN > 0 ? (trees / tracedN) * 100 : NaN
      const lost = rs.map((r) => r.logIntake).filter((x) => x !== null)
      lines.push(
        `target (${mode}): >= 99.9% of traced requests delivered as trees: ${pctDelivered >= 99.9 ? 'met' : 'NOT met'} ` +
          `(${fmt(trees)} trees from ${fmt(tracedN)} traced requests, ${fmt(pctDelivered, 3)}%, warm-ups included; ` +
          `records rejected ${fmt(lost.reduce((a, x) => a + sum(x.rejected), 0))}, dropped by the kernel ${fmt(lost.reduce((a, x) => a + x.kernelDrops, 0))}, ` +
          `HAProxy DroppedLogs ${fmt(lost.reduce((a, x) => a + (Number.isNaN(x.haproxyDroppedLogs) ? 0 : x.haproxyDroppedLogs), 0))})`,
      )
    }
    if (def.ot) {
      const want = SPANS_PER_REQUEST[mode]
      if (want === undefined) lines.push(`check (${mode}): spans per request received by the sink: ${rs.map((r) => fmt(r.spansPerRequest, 4)).join(', ')}`)
      else {
        const ok = rs.every((r) => Math.abs(r.spansPerRequest - want) < 0.01)
        lines.push(`check (${mode}): ${want} spans per request received by the sink: ${ok ? 'yes' : 'NO'} (${rs.map((r) => fmt(r.spansPerRequest, 4)).join(', ')})`)
      }
      continue
    }
    const us = m.usPerRequest.agent
    // The do-nothing agent has no targets of its own; its SPOE errors still count.
    if (!splitMode(mode).noop) lines.push(
      `target (${mode}): agent CPU <= ${TARGET_AGENT_US_PER_REQUEST} µs/request including export: ${us <= TARGET_AGENT_US_PER_REQUEST ? 'met' : 'NOT met'} ` +
        `(median ${f1(us)} µs = main ${f1(m.usPerRequest.agentMain)} + worker threads (export; tracing under tracing-idle) ${f1(m.usPerRequest.agentWorkers)} + other threads ${f1(m.usPerRequest.agentOther)})`,
    )
    const rss = Math.max(...rs.map((r) => r.agentRssMb))
    if (!splitMode(mode).noop) lines.push(
      `target (${mode}): agent RSS <= ${TARGET_AGENT_RSS_MB} MB steady: ${rss <= TARGET_AGENT_RSS_MB ? 'met' : 'NOT met'} ` +
        `(median over each window ${rs.map((r) => fmt(r.agentRssMb)).join(', ')} MB; largest in a window ${fmt(m.agentRssMaxMb)} MB; ` +
        `peak of the process, start and warm-up included, ${fmt(m.agentPeakRssMb)} MB)`,
    )
    const errs = m.totals.spoeErrors + m.totals.spoeTimeouts
    if (def.spoe !== null) lines.push(
      `target (${mode}): no SPOE errors or timeouts: ` +
        (rs.every((r) => r.spoeErrorsObservable)
          ? `${errs === 0 ? 'met' : 'NOT met'} (${fmt(m.totals.spoeErrors)} requests with an error, ${fmt(m.totals.spoeTimeouts)} with a timeout, ` +
            `out of ${fmt(m.totals.responses)} answered in ${rs.length} run(s), warm-ups included)`
          : 'not observable (the SPOE file has no `option set-on-error`)'),
    )
    const want = SPANS_PER_REQUEST[splitMode(mode).base]
    if (want !== undefined) {
      const ok = rs.every((r) => Math.abs(r.spansPerRequest - want) < 0.001)
      lines.push(
        `check (${mode}): ${want} spans per request received by the sink: ${ok ? 'yes' : 'NO'} (${rs.map((r) => fmt(r.spansPerRequest, 4)).join(', ')})` +
          (o.agentCommand !== undefined && !ok ? '; an --agent command exports to the sink only when it uses {otlp} or OTEL_EXPORTER_OTLP_ENDPOINT' : ''),
      )
    }
  }
  return lines
}

export const command: BenchCommand = {
  name: 'wrk',
  describe: 'wrk through a real HAProxy with the SPOE filter, the agent exporting to a counting sink',
  options: WRK_OPTIONS,
  epilogue: [
    'wrk through a real HAProxy (one thread, option httpclose) to an origin HAProxy, with the SPOE',
    'tracing filter and the agent exporting OTLP to a counting sink. Modes: none (no filter), spoe',
    '(haproxy/spoe.cfg, 9 spans per request), propagation (haproxy/spoe-propagation.cfg), compact',
    '(haproxy/spoe-compact.cfg and the frontend rules of haproxy/haproxy-compact.cfg: one message per',
    'request), log and log10 (haproxy/haproxy-compact-log.cfg: one log record per traced request to the',
    "agent's log intake, 100% and 10% sampled), ot and ot10 (HAProxy's OpenTracing filter, the same 9 spans,",
    `Datadog plugin: HAProxy built with USE_OT and libdd-opentracing0); a SPOE mode + "${UNGUARDED}" is the`,
    'same without the fail-fast guards (haproxy/README.md). SPOA_SAMPLE_PERCENT in the environment',
    "overrides a mode's own rate.",
    'Needs haproxy (HAPROXY_BIN or $PATH) and wrk (WRK_BIN or $PATH).',
  ].join('\n'),
  examples: [
    ['npm run bench -- wrk --ab none,spoe --rounds 3 --duration 15', 'what the 9-span SPOE profile costs plain HAProxy'],
    ['npm run bench -- wrk --mode spoe --workers 2', 'one mode, two export workers'],
    [`npm run bench -- wrk --ab spoe${UNGUARDED},spoe --rounds 5 --duration 20`, 'what the fail-fast guards cost'],
    ["npm run bench -- wrk --ab none,spoe --agent 'bin/spoa-tracer -p {port} --endpoint {otlp}'", 'another agent, the same traffic'],
    ['npm run bench -- wrk --ab ot,log', "HAProxy's own OpenTracing filter against the log intake"],
  ],
  run: (a) => main(options(a)),
}

async function main(o: Options): Promise<number> {
  const haproxyBin = findHaproxy()
  if (haproxyBin === null) throw new Error('HAProxy is not installed (sudo apt-get install -y haproxy), or set HAPROXY_BIN')
  checkOt(haproxyBin, o.modes)
  const wrkBin = process.env.WRK_BIN ?? which('wrk')
  if (!wrkBin) throw new Error('wrk is not installed (sudo apt-get install -y wrk), or set WRK_BIN')
  if (o.cpuProfDir) mkdirSync(o.cpuProfDir, { recursive: true })
  const profilesBefore = new Set(o.cpuProfDir ? readdirSync(o.cpuProfDir) : [])
  clockTicksPerSec() // spawns getconf once, before anything is measured

  const unguard = guardChildren()
  const tmp = mkdtempSync(join(tmpdir(), 'spoa-tracer-wrk-'))
  // Also on SIGINT (guardChildren's handler exits the process): the stats sockets live there.
  const removeTmp = (): void => rmSync(tmp, { recursive: true, force: true })
  process.once('exit', removeTmp)
  let origin: Haproxy | null = null
  try {
    origin = await startHaproxy({ name: 'the origin HAProxy', bin: haproxyBin, config: ORIGIN_CFG, bind: (p) => ({ ORIGIN_BIND: `127.0.0.1:${p}` }) })
    const ctx: Context = { o, haproxyBin, wrkBin, originPid: origin.pid, originPort: origin.port, tmp }
    if (!o.json) console.log(describe(ctx))

    const byMode = new Map<string, WrkRunResult[]>(o.modes.map((m) => [m, []]))
    const all: WrkRunResult[] = []
    for (let round = 1; round <= o.rounds; round++) {
      // A B, B A, A B...: a drift of the machine's load over the session falls on both modes alike.
      const order = round % 2 === 1 ? o.modes : [...o.modes].reverse()
      for (const mode of order) {
        const r = await oneRun(ctx, mode, round)
        byMode.get(mode)!.push(r)
        all.push(r)
        if (o.json) console.log(JSON.stringify({ type: 'run', ...r }))
        else {
          console.log(runLine(r))
          for (const n of runNotes(r)) console.log(`    ${n}`)
        }
      }
    }

    const meds = new Map([...byMode].map(([m, rs]) => [m, medianResult(rs)]))
    const lines = verdicts(o, byMode)
    if (o.json) {
      console.log(JSON.stringify({ type: 'summary', medians: Object.fromEntries(meds), verdicts: lines }))
    } else {
      const rows: Array<[string, WrkRunResult]> = []
      for (const [mode, rs] of byMode) {
        for (const r of rs) rows.push([`${mode} ${r.round}`, r])
        if (rs.length > 1) rows.push([`${mode} median`, meds.get(mode)!])
      }
      console.log('')
      for (const l of table(LOAD, rows)) console.log(l)
      console.log('')
      for (const l of table(CPU, rows)) console.log(l)
      console.log('')
      const othersPct = all.map((r) => r.pct.others)
      console.log(
        `noise: processes the harness did not start used ${fmt(Math.min(...othersPct))}-${fmt(Math.max(...othersPct))}% of a core ` +
          `(median ${fmt(median(othersPct))}%)` +
          [...byMode]
            .filter(([, rs]) => rs.length > 1)
            .map(([m, rs]) => `; ${m}: run-to-run spread ${fmt(spread(rs.map((r) => r.requestsPerSec)))}% in req/s`)
            .join(''),
      )
      for (const l of lines) console.log(l)
      console.log(
        'SPOE err/tmo: requests whose SPOE processing failed / timed out, per HAProxy (whole run, warm-up included); ' +
          'spans/req: spans received by the sink per response HAProxy sent; RSS: agent RSS, median of 500 ms samples in the window, ' +
          'max: the largest of them, peak: VmHWM, the largest of its life; µs/req: CPU per request in the wrk window; ' +
          'all: every process the harness started (HAProxy, agent, origin, sink, wrk, the harness); %core: percent of one core; ' +
          'others: every process the harness did not start; irq: interrupt time (mostly loopback traffic; on tick-accounting kernels also inside the processes\' times).',
      )
    }
    if (o.cpuProfDir) {
      const fresh = readdirSync(o.cpuProfDir).filter((f) => f.endsWith('.cpuprofile') && !profilesBefore.has(f))
      for (const f of fresh.sort()) console.error(`agent CPU profile: ${join(o.cpuProfDir, f)}`)
    }
    const bad = all.filter(
      (r) =>
        r.wrkErrors.socket.total > 0 ||
        r.totals.non2xx > 0 ||
        r.totals.spoeErrors > 0 ||
        r.totals.spoeTimeouts > 0 ||
        (r.agent !== null && (!r.agent.drained || r.agent.protocolErrors + r.agent.handlerErrors > 0)) ||
        (r.agent?.ours === true &&
          SPANS_PER_REQUEST[splitMode(r.mode).base] !== undefined &&
          Math.abs(r.spansPerRequest - SPANS_PER_REQUEST[splitMode(r.mode).base]!) >= 0.001),
    )
    return bad.length === 0 ? 0 : 1
  } finally {
    await origin?.stop(5000)
    removeTmp()
    process.off('exit', removeTmp)
    unguard()
  }
}
