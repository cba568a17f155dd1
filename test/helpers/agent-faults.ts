// What the agent-fault tests share: the shipped HAProxy profiles with the
// agent as a separate process (bin/spoa-tracer, so that it can be killed,
// stopped and restarted), HAProxy's own output lines with the time each
// arrived (the "Server spoa-tracer/agent is DOWN/UP" lines are the signals
// waited for), requests timed one by one, and the measurement every fault
// test makes: a baseline, the fault, each request until HAProxy has marked
// the agent DOWN and a series after it, then the recovery until a request
// sent after it reaches the OTLP receiver as spans.

import type { ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Test } from 'tap'
import { type Haproxy, startHaproxy } from '../../harness/haproxy.js'
import { freePort, waitForPort } from '../../harness/ports.js'
import { type Proc, spawnTracked } from '../../harness/process.js'
import { median } from '../../harness/report.js'
import { BIN } from './agent-process.js'
import { type Origin, startOrigin } from './origin.js'
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'

/** The shipped profiles, each with the fail-fast guards of its configuration. */
export const PROFILES = [
  { name: 'spoe.cfg', config: 'haproxy/haproxy.cfg', spoe: 'haproxy/spoe.cfg' },
  { name: 'spoe-propagation.cfg', config: 'haproxy/haproxy.cfg', spoe: 'haproxy/spoe-propagation.cfg' },
  { name: 'compact', config: 'haproxy/haproxy-compact.cfg', spoe: 'haproxy/spoe-compact.cfg' },
] as const
export type Profile = (typeof PROFILES)[number]

/** The shipped `timeout processing` (the SPOE files' default), which the fault tests keep. */
export const TIMEOUT_PROCESSING_MS = 500
/**
 * What a loaded, shared machine may add to a request that waited the whole
 * processing timeout: less than a second wait would, so one wait is still
 * told from two.
 */
export const SLACK_MS = 450
/** The issue's bounds: requests stop waiting within 2 s; then less than 5 ms added per request. */
export const DETECT_MS = 2000
export const ADDED_MS = 5
/** Tracing is back within this long after the agent is. */
export const RESUME_MS = 8000


/** Lines of a child's stdout and stderr, each with the performance.now() it arrived at. */
export class Lines {
  readonly lines: Array<{ at: number; text: string }> = []
  private partial = ''

  constructor(child: ChildProcess) {
    const take = (d: Buffer): void => {
      const at = performance.now()
      const parts = (this.partial + d.toString()).split('\n')
      this.partial = parts.pop()!
      for (const text of parts) this.lines.push({ at, text })
    }
    child.stdout?.on('data', take)
    child.stderr?.on('data', take)
  }

  /** The first line matching `re` that arrived at or after `since`, or undefined. */
  find(re: RegExp, since = 0): { at: number; text: string } | undefined {
    return this.lines.find((l) => l.at >= since && re.test(l.text))
  }

  /** Waits (bounded) for such a line; its arrival time, or null. */
  async wait(re: RegExp, since: number, ms: number): Promise<number | null> {
    let hit: { at: number } | undefined
    await eventually(() => (hit = this.find(re, since)) !== undefined, ms, 5)
    return hit?.at ?? null
  }

  text(): string {
    return this.lines.map((l) => l.text).join('\n')
  }
}

export const AGENT_DOWN = /Server spoa-tracer\/agent is DOWN/
export const AGENT_UP = /Server spoa-tracer\/agent is UP/

export type AgentProcess = Proc

/** bin/spoa-tracer as its own process on `port`, exporting to `endpoint`; resolves once it listens. */
export async function startAgentProcess(t: Test, port: number, endpoint: string, args: string[] = []): Promise<AgentProcess> {
  const p = spawnTracked({
    name: 'the agent',
    command: process.execPath,
    args: [BIN, '-p', String(port), '--exporter', 'otlp', '--endpoint', endpoint, '--batch-delay', '50ms', '-i', '0', '--tree-ttl', '2s', ...args],
  })
  // SIGKILL: a stopped (SIGSTOP) process is killed as well.
  t.teardown(() => p.stop(2000, 'SIGKILL'))
  try {
    await waitForPort(port, 15_000, () => !p.hasExited(), 'the agent')
  } catch (err) {
    throw new Error(`${(err as Error).message}:\n${p.output()}`)
  }
  return p
}

export interface FaultStack {
  receiver: OtlpReceiver
  origin: Origin
  haproxy: Haproxy
  haproxyLines: Lines
  fePort: number
  agentPort: number
  agent: AgentProcess
  /** Starts a new agent process on the same port (the previous one must be gone). */
  restartAgent(): Promise<AgentProcess>
}

/** The receiver, the origin, the agent as a process, and HAProxy with one shipped profile, unchanged. */
export async function startFaultStack(t: Test, bin: string, profile: Profile): Promise<FaultStack> {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentPort = await freePort()
  const stack = { receiver, origin, agentPort } as FaultStack
  stack.agent = await startAgentProcess(t, agentPort, receiver.tracesUrl)
  stack.restartAgent = async () => (stack.agent = await startAgentProcess(t, agentPort, receiver.tracesUrl))
  stack.haproxy = await startHaproxy({
    bin,
    config: profile.config,
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_ADDR: `127.0.0.1:${agentPort}`,
      SPOE_CONF: profile.spoe,
      SPOA_TIMEOUT_PROCESSING: `${TIMEOUT_PROCESSING_MS}ms`,
    },
  })
  stack.fePort = stack.haproxy.port
  t.teardown(() => stack.haproxy.stop())
  stack.haproxyLines = new Lines(stack.haproxy.child)
  return stack
}

export interface Timed {
  path: string
  start: number
  end: number
  ms: number
  status: number
}

/** One GET on a fresh connection, timed (status 0: it failed). */
export function timedGet(port: number, path: string, timeoutMs = 10_000): Promise<Timed> {
  return new Promise((resolve) => {
    const start = performance.now()
    const done = (status: number): void => {
      const end = performance.now()
      resolve({ path, start, end, ms: end - start, status })
    }
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume()
      res.on('end', () => done(res.statusCode ?? 0))
      res.on('error', () => done(0))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => done(0))
    req.end()
  })
}

/** Spans that carry `marker` in one of their attribute values (the request's URL, whatever the attribute is named). */
export function spansWith(receiver: OtlpReceiver, marker: string): ReceivedSpan[] {
  return receiver.spans.filter((s) => Object.values(s.attributes).some((v) => typeof v === 'string' && v.includes(marker)))
}

/** Sends requests one by one until one of them, sent now or later, arrives as spans; the time it took, or null. */
export async function untilTraced(stack: Pick<FaultStack, 'fePort' | 'receiver'>, label: string, ms: number): Promise<number | null> {
  const t0 = performance.now()
  for (let i = 0; performance.now() - t0 < ms; i++) {
    const path = `/${label}/${i}`
    const r = await timedGet(stack.fePort, path)
    if (r.status === 200 && (await eventually(() => spansWith(stack.receiver, path).length > 0, 300, 10))) return performance.now() - t0
  }
  return null
}

export interface FaultOutcome {
  /** When HAProxy logged the agent DOWN (performance.now()), and how long after the fault; null: not within the bound. */
  downAt: number | null
  detectedMs: number | null
  /** Median of the requests before the fault, the agent healthy. */
  baselineMs: number
  /** Requests that started before HAProxy marked the agent DOWN. */
  before: Timed[]
  /** Requests that started after. */
  after: Timed[]
}

const AFTER = 20
const BASELINE = 15

const series = (stack: Pick<FaultStack, 'fePort'>, label: string, n: number): Promise<Timed[]> =>
  (async () => {
    const out: Timed[] = []
    for (let i = 0; i < n; i++) out.push(await timedGet(stack.fePort, `/${label}/${i}`))
    return out
  })()

/**
 * The measurement of one fault: the baseline (requests through the same
 * stack, agent healthy), `fault()`, then requests one by one until HAProxy has
 * logged the agent DOWN and AFTER requests have started after that; asserts
 * the bounds of the time before DOWN. `settled`: the series after DOWN starts
 * once it resolves too (an agent stopping gracefully works hard for a moment,
 * and on 2 cores that slows every process, HAProxy or not). The caller
 * recovers, then calls expectResumed(), which judges the series after DOWN.
 */
export async function measureFault(
  t: Test,
  stack: Pick<FaultStack, 'fePort' | 'receiver' | 'haproxyLines'>,
  label: string,
  fault: () => void,
  settled: Promise<void> = Promise.resolve(),
): Promise<FaultOutcome> {
  // Tracing works before the fault (and HAProxy has seen the agent up).
  t.ok((await untilTraced(stack, `${label}-before`, 15_000)) !== null, 'before the fault, requests are traced')
  const base = await series(stack, `${label}-baseline`, BASELINE)
  t.ok(base.every((r) => r.status === 200), 'baseline requests answered')
  const baselineMs = median(base.map((r) => r.ms))

  const faultAt = performance.now()
  fault()
  let settledAt: number | null = null
  void settled.then(() => (settledAt = performance.now()))
  const before: Timed[] = []
  const after: Timed[] = []
  let downAt: number | null = null
  const deadline = faultAt + DETECT_MS + 8000
  for (let i = 0; after.length < AFTER && performance.now() < deadline; i++) {
    const r = await timedGet(stack.fePort, `/${label}-fault/${i}`)
    downAt ??= stack.haproxyLines.find(AGENT_DOWN, faultAt)?.at ?? null
    if (downAt !== null && r.start >= downAt) {
      if (settledAt !== null && r.start >= settledAt) after.push(r)
    } else before.push(r)
  }
  const detectedMs = downAt === null ? null : downAt - faultAt
  t.comment(
    `${label}: baseline median ${baselineMs.toFixed(2)} ms; DOWN ${detectedMs?.toFixed(0) ?? 'never'} ms after the fault; ` +
      `${before.length} request(s) before it (ms: ${fmtMs(before)}); after it (ms: ${fmtMs(after)})`,
  )
  t.ok(detectedMs !== null && detectedMs <= DETECT_MS, `HAProxy marked the agent DOWN within ${DETECT_MS} ms (${detectedMs?.toFixed(0)} ms)`)
  t.ok([...before, ...after].every((r) => r.status === 200), 'every request answered 200')
  const worst = Math.max(0, ...before.map((r) => r.ms))
  t.ok(
    worst <= TIMEOUT_PROCESSING_MS + SLACK_MS,
    `before that, no request waited more than timeout processing (${TIMEOUT_PROCESSING_MS} ms + ${SLACK_MS} ms slack): worst ${worst.toFixed(1)} ms`,
  )
  t.equal(after.length, AFTER, `${AFTER} requests after it`)
  t.ok(
    after.every((r) => r.ms < TIMEOUT_PROCESSING_MS),
    `after it, no request waits for the agent (slowest ${Math.max(0, ...after.map((r) => r.ms)).toFixed(1)} ms)`,
  )
  return { downAt, detectedMs, baselineMs, before, after }
}

const fmtMs = (rs: Timed[]): string => rs.map((r) => r.ms.toFixed(1)).join(' ')

/**
 * After the recovery action at `recoveredAt`: HAProxy marks the agent UP,
 * requests are traced again; then a second baseline, the agent healthy again,
 * so that the series after DOWN (and `more`, other series taken while the
 * agent was DOWN) are judged against the slower of two baselines around them:
 * the load of a shared machine drifts over a test.
 */
export async function expectResumed(
  t: Test,
  stack: Pick<FaultStack, 'fePort' | 'receiver' | 'haproxyLines'>,
  label: string,
  recoveredAt: number,
  fault: FaultOutcome,
  more: Record<string, Timed[]> = {},
): Promise<void> {
  // Since the DOWN: HAProxy may see the agent back before this process does.
  const upAt = await stack.haproxyLines.wait(AGENT_UP, fault.downAt ?? recoveredAt, Math.max(0, recoveredAt - performance.now()) + RESUME_MS)
  t.ok(upAt !== null, `HAProxy marked the agent UP again (${upAt === null ? 'not' : `${(upAt - recoveredAt).toFixed(0)} ms after the recovery`})`)
  const tracedMs = await untilTraced(stack, `${label}-after`, RESUME_MS)
  t.ok(tracedMs !== null, 'requests sent after the recovery reach the collector as spans')
  const resumedMs = performance.now() - recoveredAt
  t.ok(resumedMs <= RESUME_MS, `tracing resumed ${resumedMs.toFixed(0)} ms after the recovery`)

  const again = await series(stack, `${label}-baseline-again`, BASELINE)
  const reference = Math.max(fault.baselineMs, median(again.map((r) => r.ms)))
  t.comment(`${label}: baseline again ${median(again.map((r) => r.ms)).toFixed(2)} ms (ms: ${fmtMs(again)})`)
  for (const [what, rs] of Object.entries({ 'after the DOWN': fault.after, ...more })) {
    const added = median(rs.map((r) => r.ms)) - reference
    t.ok(added < ADDED_MS, `${what}, under ${ADDED_MS} ms added per request (median ${added.toFixed(2)} ms against the healthy agent)`)
  }
}
