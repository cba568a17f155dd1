// The agent as a process (bin/spoa-tracer, built into dist/ by `npm test`):
// help, version, a bad option, -r, -D -F, SIGTERM flush, SIGHUP reopen, a
// second signal. Every child is stopped by PID; every wait is bounded.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { nineSpanFlow } from '../harness/flows/nine-span.js'
import { run, tmp } from './helpers/agent-process.js'
import { FakeHaproxy } from '../harness/spop-client.js'
import { freePort, waitForPort } from '../harness/ports.js'
import { startOtlpReceiver } from '../harness/otlp-receiver.js'
import { eventually, within } from '../harness/wait.js'
import { alive } from '../harness/process.js'

t.test('--help, -V, and a bad option', async (t) => {
  const help = run(t, ['--help'])
  t.same(await within(help.exit, 10_000, 'help'), { code: 0, signal: null })
  t.match(help.out(), /--ot-tracer-config/)
  const v = run(t, ['-V'])
  t.same(await within(v.exit, 10_000, 'version'), { code: 0, signal: null })
  t.match(v.out(), /^spoa-tracer \d+\.\d+\.\d+\n$/)
  const bad = run(t, ['--port', 'eighty'])
  t.same(await within(bad.exit, 10_000, 'bad option'), { code: 2, signal: null })
  t.match(bad.err(), /^spoa-tracer: --port: expected an integer from 0 to 65535, got "eighty"\n/)
  t.equal(bad.out(), '', 'nothing started')
})

t.test('-r 1s: runs, then stops by itself with status 0; -F without -D', async (t) => {
  const pidfile = join(tmp(t), 'agent.pid')
  const p = run(t, ['-p', '0', '-r', '1s', '--exporter', 'none', '-i', '0', '-F', pidfile])
  await p.port()
  t.ok(await eventually(() => existsSync(pidfile), 5000), 'pidfile written')
  t.equal(readFileSync(pidfile, 'utf8'), `${p.child.pid}\n`, 'with our pid')
  const started = Date.now()
  t.same(await within(p.exit, 15_000, '-r 1s'), { code: 0, signal: null })
  t.notOk(existsSync(pidfile), 'pidfile removed at exit')
  t.ok(Date.now() - started < 10_000)
  t.match(p.out(), /"msg":"stopping"/)
  t.match(p.out(), /"reason":"runtime elapsed"/)
})

t.test('a listener that cannot start: status 2 and why, in one line', async (t) => {
  const dir = tmp(t)
  const notASocket = join(dir, 'file')
  writeFileSync(notASocket, 'x')
  const p = run(t, ['-a', `unix:${notASocket}`, '--exporter', 'none'])
  t.same(await within(p.exit, 15_000, 'failed start'), { code: 2, signal: null })
  t.equal(p.err(), `spoa-tracer: --address: cannot listen on unix:${notASocket}: ${notASocket} exists and is not a socket\n`)
  t.equal(p.out(), '', 'nothing started, nothing logged')
})

t.test('-D -F: detached, pidfile written once listening, removed on SIGTERM', async (t) => {
  const dir = tmp(t)
  const pidfile = join(dir, 'agent.pid')
  const port = await freePort()
  const launcher = run(t, ['-D', '-F', pidfile, '-p', String(port), '--exporter', 'none', '-l', join(dir, 'agent.log')])
  t.same(await within(launcher.exit, 20_000, 'daemonize'), { code: 0, signal: null }, 'the launcher exits 0')
  t.ok(existsSync(pidfile), 'pidfile present when the launcher returns')
  const pid = Number(readFileSync(pidfile, 'utf8').trim())
  t.ok(pid > 0 && pid !== launcher.child.pid, 'another process')
  t.teardown(() => alive(pid) && process.kill(pid, 'SIGKILL'))
  t.ok(alive(pid), 'the daemon runs')
  await waitForPort(port, 5000)
  const sid = (p: number | 'self') => readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[3]
  t.not(sid(pid), sid('self'), 'in its own session (setsid)')
  process.kill(pid, 'SIGTERM')
  t.ok(await eventually(() => !alive(pid), 15_000), 'stops on SIGTERM')
  t.notOk(existsSync(pidfile), 'pidfile removed')
  const logText = readFileSync(join(dir, 'agent.log'), 'utf8')
  t.match(logText, /"msg":"stopped"/, 'the log ends with the stop')
})

t.test('SIGTERM: every span of a finished request reaches the receiver, then exit 0', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  // A batch delay of a minute: only the shutdown flush can deliver these spans.
  const p = run(t, ['-p', '0', '--endpoint', receiver.url, '--batch-delay', '60s', '-i', '0'])
  const port = await p.port()
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'flush-me' })) {
    h.notify(sid++, 1, messages)
    t.equal((await h.next()).type, 'ack')
  }
  t.equal(receiver.spans.length, 0, 'not exported yet')
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 15_000, 'SIGTERM'), { code: 0, signal: null })
  t.equal(receiver.spans.length, 9, 'all 9 spans flushed')
  t.equal(new Set(receiver.spans.map((s) => s.traceId)).size, 1)
  h.destroy()
})

t.test('SIGTERM the moment the port opens (export workers still loading): a graceful stop', async (t) => {
  const port = await freePort()
  const p = run(t, ['-p', String(port), '-i', '0'])
  await waitForPort(port, 10_000)
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 15_000, 'SIGTERM at start'), { code: 0, signal: null }, 'not killed by the default action')
  t.match(p.out(), /"msg":"stopped"/)
})

t.test('SIGHUP reopens the log file (logrotate)', async (t) => {
  const dir = tmp(t)
  const log = join(dir, 'agent.log')
  const port = await freePort()
  const p = run(t, ['-p', String(port), '--exporter', 'none', '-l', `A:${log}`, '-i', '0'])
  await waitForPort(port, 10_000)
  t.ok(await eventually(() => existsSync(log) && /spoa-tracer started/.test(readFileSync(log, 'utf8')), 5000))
  renameSync(log, `${log}.1`)
  p.child.kill('SIGHUP')
  t.ok(await eventually(() => existsSync(log) && /log file reopened/.test(readFileSync(log, 'utf8')), 5000), 'new file written')
  p.child.kill('SIGTERM')
  await within(p.exit, 15_000, 'stop')
  t.notMatch(readFileSync(`${log}.1`, 'utf8'), /log file reopened/, 'the rotated file is left alone')
  t.match(readFileSync(log, 'utf8'), /"msg":"stopped"/)
})

t.test('a second signal exits at once', async (t) => {
  // Every ACK waits 20 s, so the graceful stop has an in-flight frame to wait for.
  const p = run(t, ['-p', '0', '--exporter', 'none', '-t', '20s', '--shutdown-timeout', '30s', '-i', '0'])
  const port = await p.port()
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  await h.hello()
  h.notify(1, 1, nineSpanFlow({ uniqueId: 'slow' })[0]!)
  await new Promise((r) => setTimeout(r, 200))
  p.child.kill('SIGTERM')
  await p.line((l) => l.msg === 'stopping')
  t.equal(p.child.exitCode, null, 'still stopping gracefully')
  p.child.kill('SIGINT')
  t.same(await within(p.exit, 5000, 'second signal'), { code: 1, signal: null })
  t.match(p.out(), /second signal: exiting now/)
  h.destroy()
})
