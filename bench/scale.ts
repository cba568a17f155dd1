// `npm run bench -- scale`: how the agent's CPU and memory grow with what
// it holds, at a load it keeps up with (a fixed rate, unlike `tracing`,
// whose closed loop saturates it). Three series, each step measured over
// the same window at the same rate of the 9-span flow (harness/steady-load.ts):
//   - held: requests left open (their first event only, as a request
//     waiting for a slow server), 0 to 100,000 by default, added between
//     steps to one agent whose tree limits are raised for it;
//   - connections: the same rate spread over 8 to 1,000 SPOP connections
//     (HAProxy 3.x pools and pipelines, but a large 2.6 setup opens one per
//     stream);
//   - size: a tag value of 0 to 8,192 bytes in each request's first message.
// Per step: the agent's CPU per request (every thread), RSS, JS heap, open
// trees, ACK latency p50/p99 as the load generator saw it; and, against the
// first step of its series, how much the CPU and memory grew for how much
// more was held: a step that grows faster than what it adds is flagged.

import { fileURLToPath } from 'node:url'
import { FakeHaproxy } from '../harness/spop-client.js'
import { nineSpanFlow } from '../harness/flows/nine-span.js'
import { LatencyHistogram } from '../harness/latency-histogram.js'
import { guardChildren } from '../harness/process.js'
import { fmt } from '../harness/report.js'
import { SteadyLoad } from '../harness/steady-load.js'
import { sleep } from '../harness/wait.js'
import { type Args, type BenchCommand, UsageError, bool, num, str } from './cli.js'
import { AGENT_SCRIPT, shippedNodeFlags } from './agent-launch.js'
import { JsonLineChild } from './json-line-child.js'
import { clockTicksPerSec } from './proc-stats.js'
import type { TracingAgentUsage } from './tracing-agent-process.js'

const SINK_SCRIPT = fileURLToPath(new URL('./otlp-sink.js', import.meta.url))

/** Frames in flight while the held requests are opened (one connection, pipelined). */
const OPEN_WINDOW = 200

interface Step {
  series: 'held' | 'connections' | 'size'
  /** What the step holds: open requests, connections or bytes. */
  value: number
  requests: number
  reqPerSec: number
  cpuUsPerReq: number
  rssMb: number
  heapMb: number
  treesOpen: number
  /** Spans dropped during the step (export queue full, tree limits). */
  dropped: number
  ackP50Us: number
  ackP99Us: number
  errors: string[]
}

const list = (a: Args, name: string): number[] => {
  const v = str(a, name) ?? ''
  const xs = v.split(',').map((x) => Number(x.trim()))
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 0)) throw new UsageError(`--${name}: a list of whole numbers, not "${v}"`)
  return xs
}

export const command: BenchCommand = {
  name: 'scale',
  describe: "the agent's CPU and memory against open requests, SPOP connections and message size, at a fixed rate",
  options: {
    rate: { type: 'number', default: 1000, describe: 'requests per second (9-span flow), every step' },
    duration: { type: 'number', default: 10, describe: 'measured seconds per step' },
    warmup: { type: 'number', default: 3, describe: 'seconds of load before each step is measured' },
    held: { type: 'string', default: '0,1000,10000,100000', describe: 'open requests held during the steps of the first series' },
    connections: { type: 'string', default: '8,64,256,1000', describe: 'SPOP connections of the second series' },
    sizes: { type: 'string', default: '0,1024,8192', describe: "bytes of a tag value in each request's first message, third series" },
    series: { type: 'string', default: 'held,connections,size', describe: 'which series to run' },
    json: { type: 'boolean', describe: 'one JSON line per step' },
  },
  examples: [['npm run bench -- scale', 'the three series at 1,000 requests/s']],
  async run(a) {
    const o = {
      rate: num(a, 'rate', 1),
      durationS: num(a, 'duration', 1),
      warmupS: num(a, 'warmup', 0),
      held: list(a, 'held'),
      connections: list(a, 'connections'),
      sizes: list(a, 'sizes'),
      series: (str(a, 'series') ?? '').split(','),
      json: bool(a, 'json'),
    }
    const unguard = guardChildren()
    const sink = await JsonLineChild.start({ name: 'the OTLP sink', script: SINK_SCRIPT })
    const steps: Step[] = []
    const report = (s: Step): void => {
      steps.push(s)
      if (o.json) console.log(JSON.stringify({ type: 'step', ...s }))
      else {
        console.log(
          `${s.series} ${fmt(s.value)}: ${fmt(s.reqPerSec)} req/s, agent ${fmt(s.cpuUsPerReq, 1)} µs/req, RSS ${fmt(s.rssMb)} MB, heap ${fmt(s.heapMb)} MB, ` +
            `trees open ${fmt(s.treesOpen)}, spans dropped ${fmt(s.dropped)}, ACK p50 ${fmt(s.ackP50Us)} µs p99 ${fmt(s.ackP99Us)} µs${s.errors.length ? `; errors: ${s.errors.slice(0, 2).join('; ')}` : ''}`,
        )
      }
    }
    try {
      console.log(`scale: ${o.rate} requests/s of the 9-span flow, ${o.warmupS} s + ${o.durationS} s per step; node ${process.version}`)
      if (o.series.includes('held')) {
        const maxHeld = Math.max(...o.held)
        await withAgent(sink, ['--max-trees', String(maxHeld + 20_000), '--tree-ttl', String(3_600_000)], async (agent, port) => {
          let opened = 0
          for (const target of [...o.held].sort((x, y) => x - y)) {
            opened = await openHeld(port, opened, target)
            report(await measure(agent, port, o, 'held', target, { connections: 8 }))
          }
        })
      }
      if (o.series.includes('connections')) {
        await withAgent(sink, [], async (agent, port) => {
          for (const c of o.connections) report(await measure(agent, port, o, 'connections', c, { connections: c }))
        })
      }
      if (o.series.includes('size')) {
        await withAgent(sink, [], async (agent, port) => {
          for (const b of o.sizes) report(await measure(agent, port, o, 'size', b, { connections: 8, padBytes: b }))
        })
      }
    } finally {
      await sink.stop(5000)
      unguard()
    }
    return judge(steps, o.json) ? 0 : 1
  },
}

async function withAgent(sink: JsonLineChild, extra: string[], body: (agent: JsonLineChild, port: number) => Promise<void>): Promise<void> {
  const agent = await JsonLineChild.start({
    name: 'the tracing agent',
    script: AGENT_SCRIPT,
    nodeArgs: shippedNodeFlags(),
    args: ['--endpoint', `http://127.0.0.1:${sink.port}/v1/traces`, '--clk-tck', String(clockTicksPerSec()), ...extra],
    timeoutMs: 30_000,
  })
  try {
    await body(agent, agent.port)
  } finally {
    await agent.request('close', 'closed', 60_000).catch(() => {})
    await agent.stop(10_000)
  }
}

/** Opens requests `from`..`to`-1 and leaves them open: the first event of each (two spans started, baggage). */
async function openHeld(port: number, from: number, to: number): Promise<number> {
  if (to <= from) return from
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  try {
    const hello = await h.hello({ engineId: 'scale-engine' })
    if (hello.type !== 'agent-hello') throw new Error(`expected AGENT-HELLO, got ${hello.type}`)
    let sid = 1
    for (let i = from; i < to; i += OPEN_WINDOW) {
      const n = Math.min(OPEN_WINDOW, to - i)
      for (let k = 0; k < n; k++) h.notify(sid++, 1, nineSpanFlow({ uniqueId: `held-${i + k}` })[0]!)
      for (let k = 0; k < n; k++) {
        const f = await h.next(10_000)
        if (f.type !== 'ack') throw new Error(`opening held requests: expected ACK, got ${f.type}`)
      }
    }
  } finally {
    h.destroy()
  }
  return to
}

const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)
const dropped = (u: TracingAgentUsage): number => sum(u.export.spansDropped) + sum(u.tracing.spansDropped)

const usage = (agent: JsonLineChild): Promise<TracingAgentUsage> => agent.request<TracingAgentUsage>('usage', 'usage')

async function measure(
  agent: JsonLineChild,
  port: number,
  o: { rate: number; durationS: number; warmupS: number },
  series: Step['series'],
  value: number,
  load: { connections: number; padBytes?: number },
): Promise<Step> {
  const gen = new SteadyLoad({ host: '127.0.0.1', port }, { rate: o.rate, prefix: `${series}-${value}`, engineId: 'scale-engine', ...load })
  await sleep(o.warmupS * 1000, gen.stopped)
  gen.latency = new LatencyHistogram()
  const r0 = gen.result.requests
  const u0 = await usage(agent)
  const t0 = performance.now()
  await sleep(o.durationS * 1000, gen.stopped)
  const u1 = await usage(agent)
  const seconds = (performance.now() - t0) / 1000
  const requests = gen.result.requests - r0
  const lat = gen.latency
  const r = await gen.stop()
  return {
    series,
    value,
    requests,
    reqPerSec: requests / seconds,
    cpuUsPerReq: (u1.userUs + u1.systemUs - u0.userUs - u0.systemUs) / Math.max(1, requests),
    rssMb: u1.rssBytes / 1048576,
    heapMb: u1.heapUsedBytes / 1048576,
    treesOpen: u1.tracing.treesOpen,
    dropped: dropped(u1) - dropped(u0),
    ackP50Us: lat.quantile(0.5),
    ackP99Us: lat.quantile(0.99),
    errors: r.errors,
  }
}

/**
 * Each step against the first of its series: CPU per request and RSS may
 * grow, but not faster than what the step adds (the ratio of the values,
 * for the held and connection series; bytes per request for size), with a
 * margin for the machine's noise. Also: the load must have kept its rate.
 */
function judge(steps: readonly Step[], json: boolean): boolean {
  let ok = true
  const lines: string[] = []
  for (const series of ['held', 'connections', 'size'] as const) {
    const s = steps.filter((x) => x.series === series)
    if (s.length < 2) continue
    const base = s[0]!
    for (let i = 1; i < s.length; i++) {
      const x = s[i]!
      const prev = s[i - 1]!
      const cpu = x.cpuUsPerReq / base.cpuUsPerReq
      const rss = x.rssMb / base.rssMb
      // What the step adds over the first: held requests or connections are
      // counted from 1 (0 held is "none"), bytes against a request's own
      // size (about 1,000 bytes of frames).
      const added = series === 'size' ? (1000 + x.value) / (1000 + base.value) : Math.max(1, x.value) / Math.max(1, base.value)
      // Faster than linear: more than what was added, with a margin for the noise (x1.5).
      const fast = (cpu > 1.5 * added && cpu > 1.5) || (rss > 1.5 * added && rss > 1.5)
      // Memory per item this step added (held requests, connections): constant when growth is linear.
      const perItem = series === 'size' ? '' : `, ${fmt(((x.rssMb - prev.rssMb) * 1024) / Math.max(1, x.value - prev.value), 2)} KB RSS per item added since ${fmt(prev.value)}`
      lines.push(
        `${series} ${fmt(base.value)} -> ${fmt(x.value)} (x${fmt(added, 1)}): CPU per request x${cpu.toFixed(2)}, RSS x${rss.toFixed(2)} ` +
          `(${fmt(base.rssMb)} -> ${fmt(x.rssMb)} MB)${perItem}${fast ? ': FASTER than linear' : ''}`,
      )
      if (fast) ok = false
    }
  }
  const slow = steps.filter((x) => x.errors.length > 0 || x.dropped > 0)
  if (slow.length > 0) ok = false
  if (json) console.log(JSON.stringify({ type: 'summary', ok, lines }))
  else {
    console.log('')
    for (const l of lines) console.log(l)
    console.log(ok ? 'scale: no step grows faster than linearly, nothing dropped' : 'scale: NOT met (a step grows faster than linearly, the load failed, or spans were dropped)')
  }
  return ok
}
