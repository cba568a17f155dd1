// HAProxy launches the agent (haproxy/haproxy-mw.cfg, master-worker
// `program` section, HAProxy 2.x to 3.2), and the agent fails:
// - killed with SIGKILL: HAProxy serves on (its master's exit-on-failure
//   never sees the agent exit: bin/spoa-tracer runs it under a supervisor),
//   requests wait at most `timeout processing` until HAProxy marks the agent
//   DOWN, within 2 s, then cost under 5 ms more; the supervisor runs the agent
//   again within 2 s, logging and counting the restart; tracing resumes;
// - unable to start (its port taken): HAProxy serves on (it used to stop
//   after about 11 s), the supervisor retries with backoff, and once the port
//   is free the agent starts and requests are traced.
// HAPROXY_BIN selects another HAProxy; 3.3 has no program section (skipped).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { expectResumed, Lines, measureFault, TIMEOUT_PROCESSING_MS, timedGet, untilTraced } from '../helpers/agent-faults.js'
import { haproxyAtLeast, startHaproxy } from '../../harness/haproxy.js'
import { freePort } from '../../harness/ports.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { startOrigin } from '../helpers/origin.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { alive } from '../../harness/process.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
const skip = bin === null ? true : haproxyAtLeast(bin, 3, 3) ? 'HAProxy 3.3+ has no program section (master-worker launch)' : false

interface LogLine {
  time: number
  pid: number
  msg: string
  restarts?: number
  delayMs?: number
  signal?: string | null
  [k: string]: unknown
}

async function setup(t: Test, agentPort: number) {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-mw-fault-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentLog = join(dir, 'agent.log')
  const haproxy = await startHaproxy({
    bin: bin!,
    config: 'haproxy/haproxy-mw.cfg',
    args: ['-W'],
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_PORT: String(agentPort),
      SPOA_TRACER: resolve('bin/spoa-tracer'),
      SPOA_TRACER_LOG: `a:${agentLog}`,
      SPOA_TRACER_MONITOR: '0',
      SPOE_CONF: 'haproxy/spoe.cfg',
      SPOA_TIMEOUT_PROCESSING: `${TIMEOUT_PROCESSING_MS}ms`,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    },
  })
  const fePort = haproxy.port
  const haproxyLines = new Lines(haproxy.child)
  const log = (): LogLine[] =>
    existsSync(agentLog)
      ? readFileSync(agentLog, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as LogLine)
      : []
  // Every process HAProxy started goes with it; the agent too, should the supervisor be gone.
  t.teardown(async () => {
    await haproxy.stop()
    for (const l of log()) if (l.msg === 'spoa-tracer started' && alive(l.pid)) process.kill(l.pid, 'SIGKILL')
  })
  const stack = { receiver, fePort, haproxyLines }
  return { stack, haproxy, log }
}

const started = (log: LogLine[]): LogLine[] => log.filter((l) => l.msg === 'spoa-tracer started')

t.test('the agent launched by HAProxy killed with SIGKILL: HAProxy serves on, the agent is back within 2 s', { skip }, async (t) => {
  const { stack, haproxy, log } = await setup(t, await freePort())
  t.ok(await eventually(() => started(log()).length === 1, 15_000), 'the agent started')
  const first = started(log())[0]!
  t.equal(first.restarts, 0, 'restarts: 0 in its start line')
  const supervisor = log().find((l) => l.msg.startsWith('supervising the agent'))
  t.ok(supervisor !== undefined && supervisor.pid !== first.pid, 'under a supervisor, a process of its own')

  let killedAt = 0
  const fault = await measureFault(t, stack, 'mw-kill', () => {
    killedAt = Date.now()
    process.kill(first.pid, 'SIGKILL')
  })
  t.ok(await eventually(() => started(log()).length === 2, 10_000), 'the agent started again')
  const second = started(log())[1]!
  const listening = log().find((l) => l.pid === second.pid && l.msg === 'listening for SPOP connections')!
  t.not(second.pid, first.pid, 'a new process')
  t.equal(second.restarts, 1, 'restarts: 1 in its start line')
  const restart = log().find((l) => l.pid === supervisor!.pid && l.restarts === 1)
  t.match(restart, { signal: 'SIGKILL', delayMs: 100 }, 'the supervisor logged the restart, with the count')
  t.match(restart?.msg, /^the agent was killed by SIGKILL: restarting it in 100 ms$/)
  const sawMs = restart!.time - killedAt
  t.ok(sawMs <= 500, `the supervisor saw the exit ${sawMs} ms after the kill, and started the agent 100 ms later`)
  // Running again within 2 s: the supervisor's part above, then what a
  // Node.js process takes to load and listen, 0.5 s on a quiet machine. On
  // one so loaded that the first agent took longer, up to twice as long.
  const firstStartMs = log().find((l) => l.pid === first.pid && l.msg === 'listening for SPOP connections')!.time - supervisor!.time
  const againMs = listening.time - killedAt
  const startMs = againMs - sawMs - 100
  t.ok(
    againMs <= 2000 || startMs <= 2 * firstStartMs,
    `listening again ${againMs} ms after the kill (its own start ${startMs} ms; the first agent's ${firstStartMs} ms)`,
  )
  t.ok(alive(haproxy.pid), 'the HAProxy master is still running')
  t.notMatch(stack.haproxyLines.text(), /exit-on-failure|Current program/, 'HAProxy saw no program exit')
  // Recovered when the new agent listened (log times are epoch ms; the helpers count in performance.now()).
  await expectResumed(t, stack, 'mw-kill', performance.now() - (Date.now() - listening.time), fault)
})

t.test('the agent launched by HAProxy cannot listen (port taken): HAProxy serves on; the agent starts once the port is free', { skip }, async (t) => {
  // Something else holds the port: it accepts and hangs up, as a wrong service would.
  const squatter: Server = createServer((s) => s.destroy())
  await new Promise<void>((ok) => squatter.listen(0, '127.0.0.1', ok))
  const agentPort = (squatter.address() as AddressInfo).port
  let squatting = true
  const release = (): Promise<void> => (squatting ? ((squatting = false), new Promise<void>((ok) => squatter.close(() => ok()))) : Promise.resolve())
  t.teardown(release)

  const { stack, haproxy, log } = await setup(t, agentPort)
  // The agent exits after its listen retries; the supervisor restarts it.
  const restarted = (): LogLine | undefined => log().find((l) => l.restarts === 1 && /restarting it in/.test(l.msg))
  t.ok(await eventually(() => restarted() !== undefined, 30_000), 'the agent failed to start and the supervisor restarts it')
  t.match(restarted(), { exitCode: 1, delayMs: 100 })
  t.equal(started(log()).length, 0, 'no agent has started')
  const served = []
  for (let i = 0; i < 10; i++) served.push(await timedGet(stack.fePort, `/port-taken/${i}`))
  t.ok(served.every((r) => r.status === 200), 'HAProxy answers')
  t.ok(
    served.slice(-5).every((r) => r.ms < TIMEOUT_PROCESSING_MS),
    `without waiting for the agent (ms: ${served.map((r) => r.ms.toFixed(1)).join(' ')})`,
  )
  t.ok(alive(haproxy.pid), 'the HAProxy master is still running')
  t.notMatch(stack.haproxyLines.text(), /exit-on-failure|Current program/, 'HAProxy saw no program exit')

  await release()
  t.ok(await eventually(() => started(log()).length === 1, 30_000), 'once the port is free, the agent starts')
  const tracedIn = await untilTraced(stack, 'port-free', 10_000)
  t.ok(tracedIn !== null, `and requests are traced (${tracedIn?.toFixed(0)} ms after it started)`)
})
