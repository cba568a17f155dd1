// `npm run bench -- soak`: the real daemon (bench/tracing-agent-process.ts,
// exporting to the counting OTLP sink) under the spoa-opentracing 9-span flow
// at a steady rate (harness/steady-load.ts), a share of the requests
// abandoned halfway (backend timeouts, aborted clients) so the reaper works
// too. Two shapes:
//   - for --minutes: every --sample seconds the agent's RSS, heap, open trees
//     and spans, exports and drops; after the warm-up, memory and open trees
//     must stay flat;
//   - with --outage S: the collector goes away for S seconds (the sink closes
//     its port and cuts its connections) and comes back. HAProxy must not
//     notice: the ACK latency during the outage (p99 within 50 ms) and the
//     agent's heap growth (within 150 MB: the queue's bound) are measured,
//     the spans dropped counted, the time export takes to recover (its first
//     success) and to work off what it held (its retries wait their backoff).

import { fileURLToPath } from 'node:url'
import { LatencyHistogram } from '../harness/latency-histogram.js'
import { guardChildren } from '../harness/process.js'
import { fmt } from '../harness/report.js'
import { SteadyLoad } from '../harness/steady-load.js'
import { sleep, waitUntil } from '../harness/wait.js'
import { type BenchCommand, bool, cpuSched, num } from './cli.js'
import { AGENT_SCRIPT, shippedNodeFlags } from './agent-launch.js'
import { JsonLineChild } from './json-line-child.js'
import { clockTicksPerSec } from './proc-stats.js'
import type { TracingAgentUsage } from './tracing-agent-process.js'

const SINK_SCRIPT = fileURLToPath(new URL('./otlp-sink.js', import.meta.url))

/** What HAProxy must not notice while the collector is gone, and what the span queue's bound allows. */
const TARGET_OUTAGE_ACK_P99_MS = 50
const TARGET_OUTAGE_HEAP_GROWTH_MB = 150
/** Load before and after the outage, seconds; how long export may take to recover. */
const OUTAGE_MARGIN_S = 10
const RECOVERY_BOUND_MS = 120_000

export const command: BenchCommand = {
  name: 'soak',
  describe: 'the tracing daemon at a steady rate for minutes (RSS, heap, open trees over time), or through a collector outage',
  options: {
    minutes: { type: 'number', default: 10, describe: 'how long the load runs (without --outage)' },
    rate: { type: 'number', default: 2000, describe: 'requests per second, 9 spans each' },
    connections: { type: 'number', default: 4, describe: 'SPOP connections' },
    abandon: { type: 'number', default: 1, describe: 'percent of requests abandoned after 4 of 8 events, left to the reaper' },
    sample: { type: 'number', default: 10, describe: 'seconds between samples' },
    warmup: { type: 'number', default: 2, describe: 'minutes excluded from the flatness check' },
    outage: { type: 'number', default: 0, describe: `seconds the collector is gone, after ${OUTAGE_MARGIN_S} s of load; then the load goes on until export has recovered, and ${OUTAGE_MARGIN_S} s more` },
    'cpu-sched': { type: 'string', describe: "the agent's --cpu-sched: normal (the default) or tracing-idle (heap: the main thread's only; RSS covers every thread)" },
    json: { type: 'boolean', describe: 'print one JSON line per sample and one summary line' },
  },
  examples: [
    ['npm run bench -- soak --minutes 10 --rate 2000', 'memory and open trees stay flat'],
    ['npm run bench -- soak --outage 60 --rate 250', 'a collector gone for a minute: ACK latency, heap growth, drops, recovery'],
    ['npm run bench -- soak --outage 20 --rate 250 --cpu-sched tracing-idle', 'the same with the tracing thread under SCHED_IDLE'],
  ],
  async run(a) {
    const o = {
      minutes: num(a, 'minutes', 0.1),
      rate: num(a, 'rate', 1),
      connections: num(a, 'connections', 1),
      abandon: num(a, 'abandon', 0) / 100,
      sampleS: num(a, 'sample', 1),
      warmupMin: num(a, 'warmup', 0),
      outageS: num(a, 'outage', 0),
      json: bool(a, 'json'),
    }
    const sched = cpuSched(a)
    const unguard = guardChildren()
    const sink = await JsonLineChild.start({ name: 'the OTLP sink', script: SINK_SCRIPT })
    try {
      const agent = await JsonLineChild.start({
        name: 'the tracing agent',
        script: AGENT_SCRIPT,
        nodeArgs: shippedNodeFlags(),
        args: ['--endpoint', `http://127.0.0.1:${sink.port}/v1/traces`, '--clk-tck', String(clockTicksPerSec()), '--cpu-sched', sched],
        timeoutMs: 30_000,
      })
      try {
        const load = new SteadyLoad(
          { host: '127.0.0.1', port: agent.port },
          { rate: o.rate, connections: o.connections, abandon: o.abandon, prefix: 'soak', engineId: 'soak-engine' },
        )
        const run = o.outageS > 0 ? outage(o, agent, sink, load) : steady(o, agent, load)
        return await run
      } finally {
        await agent.request('close', 'closed', 30_000).catch(() => {})
        await agent.stop(10_000)
      }
    } finally {
      await sink.stop(5000)
      unguard()
    }
  },
}

interface SoakOptions {
  minutes: number
  rate: number
  sampleS: number
  warmupMin: number
  outageS: number
  json: boolean
}

const usage = (agent: JsonLineChild): Promise<TracingAgentUsage> => agent.request<TracingAgentUsage>('usage', 'usage')
const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)
const mb = (bytes: number): number => Math.round(bytes / 1048576)

interface Sample {
  t: number
  rssMb: number
  heapMb: number
  treesOpen: number
  openSpans: number
  exported: number
  dropped: number
  reaped: number
  requests: number
  failing: boolean
}

/** Samples the agent every `everyS` seconds (printed as they come) until stopped. */
function sampler(agent: JsonLineChild, load: SteadyLoad, everyS: number, json: boolean, errors: string[]) {
  const started = Date.now()
  const samples: Sample[] = []
  const timer = setInterval(() => {
    usage(agent).then((u) => {
      const s: Sample = {
        t: Math.round((Date.now() - started) / 1000),
        rssMb: mb(u.rssBytes),
        heapMb: mb(u.heapUsedBytes),
        treesOpen: u.tracing.treesOpen,
        openSpans: u.tracing.openSpans,
        exported: u.export.spansExported,
        dropped: sum(u.export.spansDropped) + sum(u.tracing.spansDropped),
        reaped: u.tracing.treesReaped,
        requests: load.result.requests,
        failing: u.export.failing,
      }
      samples.push(s)
      console.log(
        json
          ? JSON.stringify({ type: 'sample', ...s })
          : `t=${s.t}s rss=${s.rssMb}MB heap=${s.heapMb}MB trees_open=${s.treesOpen} spans_open=${s.openSpans} ` +
              `exported=${s.exported} dropped=${s.dropped} reaped=${s.reaped} requests=${s.requests}${s.failing ? ' export FAILING' : ''}`,
      )
    }, (e: unknown) => errors.push(`usage sample: ${(e as Error).message}`))
  }, everyS * 1000)
  return { samples, stop: () => clearInterval(timer) }
}

/** Memory and open trees over --minutes: flat after the warm-up? */
async function steady(o: SoakOptions, agent: JsonLineChild, load: SteadyLoad): Promise<number> {
  const errors: string[] = []
  const sampling = sampler(agent, load, o.sampleS, o.json, errors)
  await sleep(o.minutes * 60_000, load.stopped)
  sampling.stop()
  const r = await load.stop()
  errors.push(...r.errors)
  const samples = sampling.samples

  const after = samples.filter((s) => s.t >= o.warmupMin * 60)
  const half = Math.floor(after.length / 2)
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  const firstRss = mean(after.slice(0, half).map((s) => s.rssMb))
  const lastRss = mean(after.slice(half).map((s) => s.rssMb))
  const treesFirst = Math.max(0, ...after.slice(0, half).map((s) => s.treesOpen))
  const treesLast = Math.max(0, ...after.slice(half).map((s) => s.treesOpen))
  // Flat: the second half of the post-warm-up samples is no more than 10% above the first
  // (RSS in mean, open trees in max), so a slow leak over minutes shows up as NOT flat.
  const flat = half > 0 && lastRss <= firstRss * 1.1 && treesLast <= treesFirst * 1.1 + 10
  const summary = {
    type: 'summary',
    minutes: o.minutes,
    rate: o.rate,
    requests: r.requests,
    abandoned: r.abandoned,
    errors: errors.slice(0, 5),
    rssFirstHalfMb: Math.round(firstRss),
    rssSecondHalfMb: Math.round(lastRss),
    rssGrowthPct: Number((((lastRss - firstRss) / Math.max(1, firstRss)) * 100).toFixed(1)),
    rssMaxMb: Math.max(...samples.map((s) => s.rssMb)),
    treesOpenMax: Math.max(...after.map((s) => s.treesOpen)),
    treesOpenLast: samples.at(-1)?.treesOpen ?? 0,
    reaped: samples.at(-1)?.reaped ?? 0,
    dropped: samples.at(-1)?.dropped ?? 0,
    flat,
  }
  console.log(o.json ? JSON.stringify(summary) : `\nsummary: ${JSON.stringify(summary)}`)
  if (!o.json) {
    console.log(
      half === 0
        ? 'flatness: not judged (no samples after the warm-up; run longer or lower --warmup)'
        : `flatness after ${o.warmupMin} min of warm-up: ${flat ? 'flat' : 'NOT flat'} (RSS ${Math.round(firstRss)} -> ${Math.round(lastRss)} MB, open trees at most ${treesFirst} -> ${treesLast})`,
    )
  }
  return errors.length > 0 || (half > 0 && !flat) ? 1 : 0
}

const latencyMs = (h: LatencyHistogram) => ({ count: h.count, p50: h.quantile(0.5) / 1000, p99: h.quantile(0.99) / 1000, max: h.max / 1000 })

/** The collector gone for --outage seconds, then back: what HAProxy saw, what the agent held and dropped, the recovery. */
async function outage(o: SoakOptions, agent: JsonLineChild, sink: JsonLineChild, load: SteadyLoad): Promise<number> {
  const errors: string[] = []
  const sampling = sampler(agent, load, o.sampleS, o.json, errors)
  await sleep(OUTAGE_MARGIN_S * 1000, load.stopped)
  const before = load.latency
  load.latency = new LatencyHistogram()
  const u0 = await usage(agent)
  await sink.request('off', 'off')
  const outageStart = Date.now()
  // The agent's heap and held spans over the outage: sampled faster than the report.
  let heapMax = u0.heapUsedBytes
  let rssMax = u0.rssBytes
  let heldMax = 0
  const watch = setInterval(() => {
    usage(agent).then((u) => {
      heapMax = Math.max(heapMax, u.heapUsedBytes)
      rssMax = Math.max(rssMax, u.rssBytes)
      heldMax = Math.max(heldMax, u.export.queueDepth + u.export.inFlight)
    }, () => {})
  }, 250)
  await sleep(o.outageS * 1000, load.stopped)
  clearInterval(watch)
  const during = load.latency
  load.latency = new LatencyHistogram()
  const u1 = await usage(agent)
  await sink.request('on', 'on')
  const backAt = Date.now()
  let recoveredMs = NaN
  try {
    await waitUntil(async () => {
      const u = await usage(agent)
      return !u.export.failing && u.export.spansExported > u1.export.spansExported
    }, RECOVERY_BOUND_MS, 'export recovering after the outage', 100)
    recoveredMs = Date.now() - backAt
  } catch (err) {
    errors.push((err as Error).message)
  }
  // The backlog worked off: the agent holds no more than a tenth of what it held at most.
  let drainedMs = NaN
  try {
    await waitUntil(async () => {
      const u = await usage(agent)
      return u.export.queueDepth + u.export.inFlight <= heldMax / 10
    }, RECOVERY_BOUND_MS, 'the backlog worked off after the outage', 250)
    drainedMs = Date.now() - backAt
  } catch (err) {
    errors.push((err as Error).message)
  }
  const u15 = await usage(agent)
  await sleep(OUTAGE_MARGIN_S * 1000, load.stopped)
  sampling.stop()
  const r = await load.stop()
  errors.push(...r.errors)
  const after = load.latency

  const dropped = (u: TracingAgentUsage): Record<string, number> => ({ ...u.export.spansDropped, ...prefixed('tracing.', u.tracing.spansDropped) })
  const droppedDuring = diff(dropped(u1), dropped(u0))
  const droppedAfter = diff(dropped(u15), dropped(u1))
  const p99 = during.quantile(0.99) / 1000
  const heapGrowthMb = (heapMax - u0.heapUsedBytes) / 1048576
  const summary = {
    type: 'summary',
    outageS: o.outageS,
    measuredOutageS: Math.round((backAt - outageStart) / 100) / 10,
    rate: o.rate,
    requests: r.requests,
    abandoned: r.abandoned,
    errors: errors.slice(0, 5),
    ackLatencyMs: { before: latencyMs(before), during: latencyMs(during), after: latencyMs(after) },
    heapGrowthMb: Math.round(heapGrowthMb * 10) / 10,
    rssGrowthMb: mb(rssMax - u0.rssBytes),
    heldSpansMax: heldMax,
    spansDropped: droppedDuring,
    spansDroppedUntilWorkedOff: droppedAfter,
    failingDuringOutage: u1.export.failing,
    recoveredS: Number.isNaN(recoveredMs) ? null : Math.round(recoveredMs / 100) / 10,
    workedOffS: Number.isNaN(drainedMs) ? null : Math.round(drainedMs / 100) / 10,
  }
  const verdicts = [
    `target: ACK p99 during the outage <= ${TARGET_OUTAGE_ACK_P99_MS} ms: ${p99 <= TARGET_OUTAGE_ACK_P99_MS ? 'met' : 'NOT met'} (${fmt(p99, 2)} ms over ${fmt(during.count)} ACKs)`,
    `target: agent heap growth during the outage <= ${TARGET_OUTAGE_HEAP_GROWTH_MB} MB: ${heapGrowthMb <= TARGET_OUTAGE_HEAP_GROWTH_MB ? 'met' : 'NOT met'} (${fmt(heapGrowthMb, 1)} MB; RSS ${fmt(summary.rssGrowthMb)} MB; at most ${fmt(heldMax)} spans held)`,
    `check: the exporter said it was failing: ${u1.export.failing ? 'yes' : 'NO'}; spans dropped ${JSON.stringify(droppedDuring)}`,
    `check: export recovered by itself: ${Number.isNaN(recoveredMs) ? 'NO' : `yes, ${fmt(recoveredMs / 1000, 1)} s after the collector came back`}`,
    `backlog: worked off ${Number.isNaN(drainedMs) ? 'NOT within the bound' : `${fmt(drainedMs / 1000, 1)} s after the collector came back`}; spans dropped meanwhile ${JSON.stringify(droppedAfter)}`,
  ]
  if (o.json) console.log(JSON.stringify({ ...summary, verdicts }))
  else {
    console.log(`\nsummary: ${JSON.stringify(summary)}`)
    for (const v of verdicts) console.log(v)
  }
  const met = p99 <= TARGET_OUTAGE_ACK_P99_MS && heapGrowthMb <= TARGET_OUTAGE_HEAP_GROWTH_MB && u1.export.failing && !Number.isNaN(recoveredMs)
  return errors.length === 0 && met ? 0 : 1
}

function prefixed(p: string, m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [`${p}${k}`, v]))
}

/** a - b, the keys that grew. */
function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(a)) if (v - (b[k] ?? 0) > 0) out[k] = v - (b[k] ?? 0)
  return out
}
