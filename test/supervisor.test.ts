// The supervising parent (src/supervisor.ts), through bin/spoa-tracer
// --supervise (what HAProxy's `program` section gets by default): the agent
// restarted when killed, each restart logged on one line and counted (start
// line, /metrics), backoff on a crash loop, SIGTERM stopping both with
// status 0 and the spans flushed, SIGHUP reaching both log files, an agent
// that outlives its supervisor stopping by itself, -D with the pidfile naming
// the supervisor. And the pure parts: the delays, when to supervise, the
// option. Every process is stopped by PID; every wait is bounded.

import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parseCli } from '../src/daemon/cli.js'
import { BACKOFF, RESTARTS_ENV, RestartBackoff, restartDelayMs, shouldSupervise, SUPERVISOR_ENV, supervisedBy } from '../src/daemon/supervisor.js'
import { freePort, waitForPort } from '../harness/ports.js'
import { alive } from '../harness/process.js'
import { eventually } from '../harness/wait.js'

const BIN = join(process.cwd(), 'bin', 'spoa-tracer')

interface LogLine {
  time: number
  pid: number
  msg: string
  [k: string]: unknown
}

interface Proc {
  child: ChildProcess
  out: () => string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

function run(t: Test, args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, out: () => out, exit }
}

function lines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
}

const tmp = (t: Test): string => {
  const d = mkdtempSync(join(tmpdir(), 'spoa-sup-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** The agents (pids) a supervisor's log has seen start, in order; each killed at teardown if still there. */
function agents(t: Test, log: () => LogLine[]): () => LogLine[] {
  t.teardown(() => {
    for (const l of log()) if (l.msg === 'spoa-tracer started' && alive(l.pid)) process.kill(l.pid, 'SIGKILL')
  })
  return () => log().filter((l) => l.msg === 'spoa-tracer started')
}

t.test('restart delays: 100 ms doubling to 10 s while the agent keeps dying, 100 ms again after a stable run', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => restartDelayMs(n)), [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000])
  t.equal(restartDelayMs(1000), BACKOFF.maxMs, 'no overflow')
  const b = new RestartBackoff()
  t.same([50, 800, 2000, 9000].map((ran) => b.next(ran)), [100, 200, 400, 800], 'quick exits in a row double the delay')
  t.equal(b.next(BACKOFF.stableMs), 100, 'a run of 10 s ends the series')
  t.equal(b.next(10), 200)
})

t.test('when to supervise', async (t) => {
  t.equal(shouldSupervise(null, true, {}), true, 'launched by HAProxy: yes')
  t.equal(shouldSupervise(null, false, {}), false, 'otherwise not (systemd restarts the agent itself)')
  t.equal(shouldSupervise(true, false, {}), true, '--supervise')
  t.equal(shouldSupervise(false, true, {}), false, '--no-supervise')
  t.equal(shouldSupervise(true, true, { [SUPERVISOR_ENV]: '123' }), false, 'never in the agent a supervisor runs')
  t.same(supervisedBy({ [SUPERVISOR_ENV]: '123', [RESTARTS_ENV]: '4' }), { supervisorPid: 123, restarts: 4 })
  t.same(supervisedBy({ [SUPERVISOR_ENV]: '123' }), { supervisorPid: 123, restarts: 0 })
  t.equal(supervisedBy({}), null)
  const io = { env: {}, isTTY: false }
  t.equal((await parseCli([], io)).supervise, null, 'no option: decided by who launched us')
  t.equal((await parseCli(['--supervise'], io)).supervise, true)
  t.equal((await parseCli(['--no-supervise'], io)).supervise, false)
})

t.test('--supervise: a killed agent runs again, the restart logged and counted; SIGTERM stops both', async (t) => {
  const [port, metricsPort] = [await freePort(), await freePort()]
  const p = run(t, ['--supervise', '-p', String(port), '--exporter', 'none', '-i', '0', '--metrics-address', String(metricsPort)])
  const started = agents(t, () => lines(p.out()))
  t.ok(await eventually(() => started().length === 1, 15_000), 'the agent started')
  const first = started()[0]!
  t.not(first.pid, p.child.pid, 'in a process of its own')
  t.equal(first.restarts, 0)

  const killedAt = Date.now()
  process.kill(first.pid, 'SIGKILL')
  t.ok(await eventually(() => started().length === 2, 15_000), 'a new agent started')
  const second = started()[1]!
  t.equal(second.restarts, 1, 'its start line counts the restart')
  const restart = lines(p.out()).filter((l) => /restarting it in/.test(l.msg))
  t.equal(restart.length, 1, 'one line per restart')
  t.match(restart[0], { pid: p.child.pid, component: 'supervisor', restarts: 1, signal: 'SIGKILL', exitCode: null, delayMs: 100 })
  t.ok(restart[0]!.time - killedAt < 1000, 'logged as the agent died')
  await waitForPort(port, 10_000)
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  t.match(metrics, /^spoa_tracer_agent_restarts_total 1$/m, '/metrics counts it')

  process.kill(p.child.pid!, 'SIGTERM')
  t.same(await p.exit, { code: 0, signal: null }, 'the supervisor exits 0')
  t.notOk(alive(second.pid), 'after the agent')
  const after = lines(p.out())
  t.ok(after.some((l) => l.pid === second.pid && l.msg === 'stopping' && l.reason === 'SIGTERM'), 'the agent was stopped gracefully')
  t.ok(after.some((l) => l.pid === second.pid && l.msg === 'stopped'))
  t.equal(started().length, 2, 'and not restarted')
})

t.test('a crash loop: each restart waits twice as long', async (t) => {
  const port = await freePort()
  const p = run(t, ['--supervise', '-p', String(port), '--exporter', 'none', '-i', '0'])
  const started = agents(t, () => lines(p.out()))
  for (let n = 1; n <= 3; n++) {
    t.ok(await eventually(() => started().length === n, 15_000), `agent ${n} started`)
    process.kill(started()[n - 1]!.pid, 'SIGKILL')
  }
  t.ok(await eventually(() => started().length === 4, 15_000), 'agent 4 started')
  const delays = lines(p.out())
    .filter((l) => /restarting it in/.test(l.msg))
    .map((l) => l.delayMs)
  t.same(delays, [100, 200, 400])
  process.kill(p.child.pid!, 'SIGTERM')
  t.same(await p.exit, { code: 0, signal: null })
})

t.test('SIGHUP reaches both log files; an agent whose supervisor died stops by itself', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'agent.log')
  const port = await freePort()
  const p = run(t, ['--supervise', '-p', String(port), '--exporter', 'none', '-i', '0', '-l', `w:${file}`])
  const log = (): LogLine[] => (existsSync(file) ? lines(readFileSync(file, 'utf8')) : [])
  const started = agents(t, log)
  t.ok(await eventually(() => started().length === 1, 15_000), 'the agent started, logging to the same file')
  t.ok(log().some((l) => l.pid === p.child.pid && l.component === 'supervisor'), "with the supervisor's lines")
  const agent = started()[0]!.pid

  renameSync(file, `${file}.1`)
  process.kill(p.child.pid!, 'SIGHUP')
  t.ok(
    await eventually(() => ['supervisor', 'agent'].every((who) => log().some((l) => l.msg === 'log file reopened' && (l.pid === agent) === (who === 'agent'))), 5000),
    'both reopened the log file',
  )
  t.ok(alive(p.child.pid!) && alive(agent), 'both still running')

  process.kill(p.child.pid!, 'SIGKILL')
  t.ok(await eventually(() => !alive(agent), 10_000), 'the orphaned agent stopped')
  t.ok(log().some((l) => l.pid === agent && l.reason === 'the supervisor is gone'), 'saying why')
})

t.test('SIGHUP with logs on stdout: both carry on', async (t) => {
  const port = await freePort()
  const p = run(t, ['--supervise', '-p', String(port), '--exporter', 'none', '-i', '0'])
  const started = agents(t, () => lines(p.out()))
  t.ok(await eventually(() => started().length === 1, 15_000))
  process.kill(p.child.pid!, 'SIGHUP')
  t.ok(await eventually(() => lines(p.out()).filter((l) => l.msg === 'log file reopened').length === 2, 5000), 'both handled it')
  t.notMatch(p.out(), /uncaught|failure/, 'no crash')
  t.ok(alive(p.child.pid!) && alive(started()[0]!.pid))
  process.kill(p.child.pid!, 'SIGTERM')
  t.same(await p.exit, { code: 0, signal: null })
})

t.test('-D --supervise -F: the pidfile names the supervisor; SIGTERM to it stops both', async (t) => {
  const dir = tmp(t)
  const pidfile = join(dir, 'agent.pid')
  const file = join(dir, 'agent.log')
  const port = await freePort()
  const p = run(t, ['-D', '--supervise', '-F', pidfile, '-p', String(port), '--exporter', 'none', '-i', '0', '-l', `a:${file}`])
  t.same(await p.exit, { code: 0, signal: null }, 'the launcher returns once the agent is ready')
  t.ok(existsSync(pidfile), 'pidfile written')
  const supervisor = Number(readFileSync(pidfile, 'utf8'))
  t.teardown(() => {
    if (alive(supervisor)) process.kill(supervisor, 'SIGKILL')
  })
  const started = agents(t, () => lines(readFileSync(file, 'utf8')))
  t.equal(started().length, 1)
  const agent = started()[0]!.pid
  t.not(agent, supervisor, 'the supervisor, not the agent')
  await waitForPort(port, 5000)
  process.kill(supervisor, 'SIGTERM')
  t.ok(await eventually(() => !alive(supervisor) && !alive(agent), 15_000), 'both stopped')
  t.notOk(existsSync(pidfile), 'pidfile removed')
})

/** Processes whose command line holds `arg` (ours carry a unique port). */
function withArg(arg: string): number[] {
  const pids: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(e))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}

t.test('-D --supervise: an agent that cannot start is reported, nothing left running', async (t) => {
  const port = String(await freePort())
  // A documentation address (RFC 5737): no interface has it, listening fails at once.
  const p = run(t, ['-D', '--supervise', '-a', '192.0.2.1', '-p', port, '--exporter', 'none', '-i', '0'])
  t.same(await p.exit, { code: 1, signal: null }, 'the launcher exits 1')
  t.match(p.out(), /spoa-tracer: .*192\.0\.2\.1/)
  t.ok(await eventually(() => withArg(port).length === 0, 10_000), 'neither the supervisor nor an agent is left')
})
