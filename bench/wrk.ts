// wrk (https://github.com/wg/wrk) for bench/haproxy-wrk.ts: one bounded run
// with --latency, and the parsing of its report:
//
//     Running 15s test @ http://127.0.0.1:8080/
//       1 threads and 8 connections
//       Thread Stats   Avg      Stdev     Max   +/- Stdev
//         Latency   293.65us  158.52us   3.56ms   88.69%
//         Req/Sec    21.26k     1.64k   22.93k    80.65%
//       Latency Distribution
//          50%  264.00us
//          75%  343.00us
//          90%  425.00us
//          99%  793.00us
//       65553 requests in 3.10s, 3.56MB read
//       Socket errors: connect 0, read 0, write 0, timeout 0     (only when some)
//       Non-2xx or 3xx responses: 12                             (only when some)
//     Requests/sec:  21151.08
//     Transfer/sec:      1.15MB
//
// wrk's "Non-2xx or 3xx" counts statuses above 399; the harness counts
// non-2xx responses in HAProxy itself (haproxy/bench/proxy.cfg).

import { spawnTracked } from '../harness/process.js'

export interface WrkResult {
  requests: number
  /** wrk's own run time, seconds. */
  runtimeS: number
  requestsPerSec: number
  latencyUs: { avg: number; p50: number; p75: number; p90: number; p99: number; max: number }
  /** Responses with a status above 399, as wrk counts them. */
  non2xx3xx: number
  socketErrors: { connect: number; read: number; write: number; timeout: number; total: number }
  raw: string
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }

function toUs(value: string, unit: string): number {
  const f = UNIT_US[unit]
  if (f === undefined) throw new Error(`unknown time unit "${unit}"`)
  return Number(value) * f
}

/** Parses wrk's report (with --latency). Throws on a report it does not understand. */
export function parseWrk(out: string): WrkResult {
  const must = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out)
    if (m === null) throw new Error(`wrk output without ${what}:\n${out}`)
    return m
  }
  const lat = must(/^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m|h)/m, 'the latency line')
  const pct = (p: number): number => {
    const m = must(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm'), `the ${p}% latency`)
    return toUs(m[1]!, m[2]!)
  }
  const reqs = must(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)/m, 'the request count')
  const rps = must(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const nx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  const socketErrors = {
    connect: Number(se?.[1] ?? 0),
    read: Number(se?.[2] ?? 0),
    write: Number(se?.[3] ?? 0),
    timeout: Number(se?.[4] ?? 0),
    total: 0,
  }
  socketErrors.total = socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout
  return {
    requests: Number(reqs[1]),
    runtimeS: toUs(reqs[2]!, reqs[3]!) / 1e6,
    requestsPerSec: Number(rps[1]),
    latencyUs: { avg: toUs(lat[1]!, lat[2]!), p50: pct(50), p75: pct(75), p90: pct(90), p99: pct(99), max: toUs(lat[3]!, lat[4]!) },
    non2xx3xx: Number(nx?.[1] ?? 0),
    socketErrors,
    raw: out,
  }
}

export interface WrkOptions {
  bin: string
  url: string
  threads: number
  connections: number
  durationS: number
  /** wrk --timeout: a response slower than this counts as a socket timeout. */
  timeoutS: number
}

/** Runs wrk once, bounded (duration + 30 s, then SIGKILL), and parses its report. */
export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = [
    '--threads', String(o.threads),
    '--connections', String(o.connections),
    '--duration', `${o.durationS}s`,
    '--timeout', `${o.timeoutS}s`,
    '--latency',
    o.url,
  ]
  const p = spawnTracked({ name: 'wrk', command: o.bin, args })
  const boundMs = (o.durationS + 30) * 1000
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), boundMs)))
  const r = await Promise.race([p.exited, late])
  clearTimeout(timer)
  if (r === 'late') {
    await p.stop(1000, 'SIGKILL')
    throw new Error(`wrk did not finish within ${boundMs} ms:\n${p.tail()}`)
  }
  const out = p.output()
  if (p.child.exitCode !== 0) throw new Error(`wrk exited with ${p.child.exitCode ?? p.child.signalCode}:\n${out}`)
  return parseWrk(out)
}
