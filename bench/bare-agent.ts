// The bare-agent benchmark: the SPOP layer alone (no-op handler) in a child
// process (agent-process.ts), driven by the load generator in this one.
// For each run it reports ACKs per second, ACK latency, the agent's CPU per
// frame and utilisation, the load generator's CPU per frame (to show it is not
// the bottleneck) and the CPU that OTHER processes used meanwhile: the machine
// is small and shared, so a slow run must be told apart from a noisy one.
//
// CPU accounting over the measured window: the agent's process.cpuUsage is
// sampled when the window opens and closes (asked over its stdin), the load
// generator's is its own, and the machine's busy time comes from /proc/stat;
// other = machine - agent - load generator. Steal (time the hypervisor gave
// to other guests) is reported apart.

import { mkdirSync, readdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { guardChildren } from '../harness/process.js'
import { type Column, fmt, medianRecord, tableLine } from '../harness/report.js'
import type { AgentUsage } from './agent-process.js'
import { type Args, type BenchCommand, bool, num, str } from './cli.js'
import { JsonLineChild } from './json-line-child.js'
import { defaultFlow } from './notify-template.js'
import { clockTicksPerSec, type MachineCpu, readMachineCpu } from './proc-stats.js'
import { formatErrors, LOAD_OPTIONS, type LoadgenResult, type LoadShape, loadShape, NOTIFY_OPTIONS, runLoadgen } from './spop-loadgen.js'

/** The project's target for this benchmark. */
const TARGET_FRAMES_PER_SEC = 300_000

const AGENT_SCRIPT = fileURLToPath(new URL('./agent-process.js', import.meta.url))

// ---- one run ---------------------------------------------------------------

export interface BareRunResult {
  run: number
  framesPerSec: number
  latencyUs: LoadgenResult['latencyUs']
  /** Agent CPU over the window / ACKs received in it. */
  agentUsPerFrame: number
  /** Agent CPU over the window, percent of one core. */
  agentCpuPct: number
  agentRssMb: number
  loadgenUsPerFrame: number
  loadgenCpuPct: number
  /** CPU used by every other process during the window, percent of one core (machine-wide; -1 if unknown). */
  otherCpuPct: number
  stealPct: number
  loadgen: LoadgenResult
  agent: { acks: number; protocolErrors: number }
}

async function oneRun(run: number, shape: LoadShape, cpuProfDir: string | undefined): Promise<BareRunResult> {
  const nodeArgs = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []
  const agent = await JsonLineChild.start({
    name: 'the agent',
    script: AGENT_SCRIPT,
    args: ['--host', '127.0.0.1', '--port', '0', '--exit-with-stdin'],
    nodeArgs,
    timeoutMs: 10_000,
  })
  const sample = (): Promise<AgentUsage> => agent.request<AgentUsage>('usage', 'usage')
  try {
    // Filled by the hooks, which the load generator calls synchronously at the window's edges.
    const at: { a0?: Promise<AgentUsage>; a1?: Promise<AgentUsage>; m0?: MachineCpu | null; m1?: MachineCpu | null } = {}
    const r = await runLoadgen({
      ...shape,
      target: { host: '127.0.0.1', port: agent.port },
      flow: defaultFlow(shape.args, shape.messages),
      hooks: {
        onWindowStart: () => {
          at.a0 = sample()
          at.a0.catch(() => {}) // awaited below; a rejection must not go unhandled meanwhile
          at.m0 = readMachineCpu()
        },
        onWindowEnd: () => {
          at.a1 = sample()
          at.a1.catch(() => {})
          at.m1 = readMachineCpu()
        },
      },
    })
    if (!at.a0 || !at.a1) throw new Error('the measured window never opened')
    const [u0, u1] = await Promise.all([at.a0, at.a1])
    const windowUs = r.windowS * 1e6
    const agentUs = u1.userUs + u1.systemUs - (u0.userUs + u0.systemUs)
    const loadgenUs = r.loadgenCpu.userUs + r.loadgenCpu.systemUs
    const mc0 = at.m0 ?? null
    const mc1 = at.m1 ?? null
    const other = mc0 && mc1 ? mc1.busyUs - mc0.busyUs - agentUs - loadgenUs : NaN
    const steal = mc0 && mc1 ? mc1.stealUs - mc0.stealUs : NaN
    return {
      run,
      framesPerSec: r.framesPerSec,
      latencyUs: r.latencyUs,
      agentUsPerFrame: r.frames > 0 ? agentUs / r.frames : 0,
      agentCpuPct: (agentUs / windowUs) * 100,
      agentRssMb: u1.rssBytes / 2 ** 20,
      loadgenUsPerFrame: r.loadgenCpu.usPerFrame,
      loadgenCpuPct: r.loadgenCpu.utilisation,
      // Jiffies are coarse (10 ms): a small negative value is rounding, not negative work.
      otherCpuPct: Number.isNaN(other) ? -1 : Math.max(0, (other / windowUs) * 100),
      stealPct: Number.isNaN(steal) ? -1 : (steal / windowUs) * 100,
      loadgen: r,
      agent: { acks: u1.acksSent - u0.acksSent, protocolErrors: u1.protocolErrors },
    }
  } finally {
    await agent.stop(cpuProfDir ? 30_000 : 5_000)
  }
}

// ---- report ----------------------------------------------------------------

type Row = Omit<BareRunResult, 'run' | 'loadgen' | 'agent'>

const COLUMNS: Array<Column<Row>> = [
  ['frames/s', 10, (r) => fmt(r.framesPerSec)],
  ['p50 µs', 8, (r) => fmt(r.latencyUs.p50)],
  ['p90 µs', 8, (r) => fmt(r.latencyUs.p90)],
  ['p99 µs', 8, (r) => fmt(r.latencyUs.p99)],
  ['p99.9 µs', 9, (r) => fmt(r.latencyUs.p999)],
  ['max µs', 8, (r) => fmt(r.latencyUs.max)],
  ['agent µs/fr', 11, (r) => fmt(r.agentUsPerFrame, 2)],
  ['agent %core', 11, (r) => fmt(r.agentCpuPct, 1)],
  ['agent RSS MB', 12, (r) => fmt(r.agentRssMb, 1)],
  ['lg µs/fr', 8, (r) => fmt(r.loadgenUsPerFrame, 2)],
  ['lg %core', 8, (r) => fmt(r.loadgenCpuPct, 1)],
  ['other %core', 11, (r) => (r.otherCpuPct < 0 ? 'n/a' : fmt(r.otherCpuPct, 1))],
  ['steal %', 7, (r) => (r.stealPct < 0 ? 'n/a' : fmt(r.stealPct, 1))],
]

export const command: BenchCommand = {
  name: 'bare',
  describe: 'the bare agent (no-op handler) in a child process, driven by the load generator',
  options: {
    ...LOAD_OPTIONS,
    ...NOTIFY_OPTIONS,
    runs: { type: 'number', default: 3, describe: 'runs, each with a fresh agent process; the median is printed too' },
    'cpu-prof': { type: 'string', describe: 'start the agent with node --cpu-prof --cpu-prof-dir DIR' },
    json: { type: 'boolean', describe: 'print one JSON line per run and one for the median' },
  },
  run: main,
}

async function main(a: Args): Promise<number> {
  const shape = loadShape(a)
  const runs = num(a, 'runs', 1)
  const json = bool(a, 'json')
  const profArg = str(a, 'cpu-prof')
  const cpuProfDir = profArg ? resolve(profArg) : undefined
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true })
  clockTicksPerSec()
  const profilesBefore = new Set(cpuProfDir ? readdirSync(cpuProfDir) : [])

  const unguard = guardChildren()

  try {
    if (!json) {
      const tpl = defaultFlow(shape.args, shape.messages)[0]!
      console.log(
        `bare agent (no-op handler, one process): ${shape.connections} connections x depth ${shape.depth}, ` +
          `NOTIFY of ${shape.messages} x ${shape.args}-argument message (${tpl.payload.length} payload bytes), ` +
          `${shape.durationS} s after ${shape.warmupS} s warm-up, ${runs} run(s); ` +
          `node ${process.version}, ${cpus().length} CPUs`,
      )
      console.log(tableLine(COLUMNS, 'run', null, 7))
    }
    const results: BareRunResult[] = []
    for (let i = 1; i <= runs; i++) {
      const r = await oneRun(i, shape, cpuProfDir)
      results.push(r)
      if (json) console.log(JSON.stringify(r))
      else {
        console.log(tableLine(COLUMNS, String(i), r, 7))
        const e = r.loadgen.errors
        if (e.total > 0 || r.agent.protocolErrors > 0) {
          console.log(`        errors: ${formatErrors(e)}; agent protocol errors: ${r.agent.protocolErrors}`)
        }
      }
    }
    const med: Row = medianRecord(results, { loadgen: 'base', agent: 'base' })
    const met = med.framesPerSec >= TARGET_FRAMES_PER_SEC
    if (json) {
      console.log(JSON.stringify({ median: med, target: TARGET_FRAMES_PER_SEC, met }))
    } else {
      if (runs > 1) console.log(tableLine(COLUMNS, 'median', med, 7))
      console.log(
        `target ${fmt(TARGET_FRAMES_PER_SEC)} frames/s: ${met ? 'met' : 'NOT met'} ` +
          `(median ${fmt(med.framesPerSec)}). lg = load generator; %core = percent of one core; ` +
          `other = CPU of all other processes during the window.`,
      )
      if (med.loadgenUsPerFrame > med.agentUsPerFrame / 2) {
        console.log('warning: the load generator uses more than half the CPU per frame of the agent')
      }
    }
    if (cpuProfDir) {
      const fresh = readdirSync(cpuProfDir).filter((f) => f.endsWith('.cpuprofile') && !profilesBefore.has(f))
      for (const f of fresh) console.error(`agent CPU profile: ${join(cpuProfDir, f)}`)
    }
    const errors = results.reduce((n, r) => n + r.loadgen.errors.total + r.agent.protocolErrors, 0)
    return errors === 0 ? 0 : 1
  } finally {
    unguard()
  }
}
