// Start-up input, as an operator meets it: bin/spoa-tracer spawned with a bad
// value or an unusable path must say so in one line on stderr naming the
// option, exit with status 2, print no stack trace, create nothing it was not
// asked for, and never start listening. A port in use is one line too
// (status 1); retrying it is asked for (--listen-retry) and a signal or -r
// ends the wait. --check validates without serving. Secrets never reach a
// log line, an error message or the metrics endpoint.

import { existsSync, readdirSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { nineSpanFlow } from '../harness/flows/nine-span.js'
import { type Proc, run, tmp } from './helpers/agent-process.js'
import { within } from '../harness/wait.js'
import { FakeHaproxy } from '../harness/spop-client.js'
import { freePort, waitForPort } from '../harness/ports.js'
import { http } from './helpers/http.js'
import { threadPolicies, threadPolicy } from '../src/daemon/cpu-sched.js'

/** Runs the agent to its exit; asserts status 2, nothing on stdout, and returns stderr. */
async function refused(t: Test, args: string[], cwd?: string): Promise<string> {
  const p = run(t, [...args, '-i', '0'], {}, cwd)
  const exit = await within(p.exit, 15_000, args.join(' '))
  t.same(exit, { code: 2, signal: null }, `${args.join(' ')}: status 2`)
  t.equal(p.out(), '', 'nothing logged: the agent never started')
  t.notMatch(p.err(), /\n\s+at /, 'no stack trace')
  return p.err()
}

async function holdPort(t: Test): Promise<{ port: number; server: Server }> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  return { port: (server.address() as { port: number }).port, server }
}

t.test('-l, a log file that cannot be opened: one line, status 2, nothing created', async (t) => {
  const dir = tmp(t)
  t.equal(await refused(t, ['-l', '/proc/nope/x.log']), 'spoa-tracer: --logfile: cannot open /proc/nope/x.log: directory /proc/nope does not exist\n')
  t.equal(await refused(t, ['-l', 'W:/proc/nope/x.log']), 'spoa-tracer: --logfile: cannot open /proc/nope/x.log: directory /proc/nope does not exist\n', 'with a MODE')
  t.equal(await refused(t, ['-l', dir]), `spoa-tracer: --logfile: cannot open ${dir}: ${dir} is a directory\n`)
  const missing = join(dir, 'nonexistent', 'x.log')
  t.equal(await refused(t, ['-l', missing]), `spoa-tracer: --logfile: cannot open ${missing}: directory ${join(dir, 'nonexistent')} does not exist\n`)
  t.notOk(existsSync(join(dir, 'nonexistent')), 'the missing directory is not created')
  t.equal(
    await refused(t, ['-l', `x:${join(dir, 'y.log')}`], dir),
    `spoa-tracer: --logfile: unknown MODE "x" in "x:${join(dir, 'y.log')}"; expected [MODE:]FILE with MODE a, w, A or W\n`,
  )
  t.same(readdirSync(dir), [], 'no "./x:" directory, no file')
})

t.test('-a, an address that is not one: one line, status 2', async (t) => {
  t.equal(await refused(t, ['-a', '1.2.3.4.5']), 'spoa-tracer: --address: cannot resolve "1.2.3.4.5": not an IP address, and no such host name\n')
  t.equal(await refused(t, ['-a', '192.0.2.1', '-p', String(await freePort())]), 'spoa-tracer: --address: 192.0.2.1 is not an address of this host\n')
  t.equal(await refused(t, ['-a', 'unix:/nonexistent-dir/spoa.sock']), 'spoa-tracer: --address: cannot listen on unix:/nonexistent-dir/spoa.sock: directory /nonexistent-dir does not exist\n')
  t.equal(await refused(t, ['--metrics-address', 'nohost.invalid:9464']), 'spoa-tracer: --metrics-address: cannot resolve "nohost.invalid": not an IP address, and no such host name\n')
})

t.test('--output-file and --pidfile in a missing directory: refused before listening', async (t) => {
  const dir = tmp(t)
  const port = await freePort()
  const spans = join(dir, 'missing', 's.jsonl')
  t.equal(
    await refused(t, ['-p', String(port), '--exporter', 'file', '--output-file', spans]),
    `spoa-tracer: --output-file: cannot open ${spans}: directory ${join(dir, 'missing')} does not exist\n`,
  )
  const pid = join(dir, 'missing', 'agent.pid')
  t.equal(await refused(t, ['-p', String(port), '-F', pid]), `spoa-tracer: --pidfile: cannot write ${pid}: directory ${join(dir, 'missing')} does not exist\n`)
  t.same(readdirSync(dir), [])
})

t.test('several bad values: every one, one line each, status 2', async (t) => {
  const dir = tmp(t)
  t.equal(
    await refused(t, ['--port', 'eighty', '--capability', 'turbo', '-l', join(dir, 'no', 'a.log'), '--exporter', 'file', '--output-file', join(dir, 'no', 's.jsonl')]),
    [
      'spoa-tracer: --port: expected an integer from 0 to 65535, got "eighty"',
      'spoa-tracer: --capability: expected pipelining, async, fragmentation; got "turbo"',
      '',
    ].join('\n'),
    'value problems first: files are checked on a configuration that parses',
  )
  t.equal(
    await refused(t, ['-l', join(dir, 'no', 'a.log'), '--exporter', 'file', '--output-file', join(dir, 'no', 's.jsonl')]),
    [
      `spoa-tracer: --logfile: cannot open ${join(dir, 'no', 'a.log')}: directory ${join(dir, 'no')} does not exist`,
      `spoa-tracer: --output-file: cannot open ${join(dir, 'no', 's.jsonl')}: directory ${join(dir, 'no')} does not exist`,
      '',
    ].join('\n'),
  )
  const usage = run(t, ['--bogus'])
  t.same(await within(usage.exit, 15_000, 'usage'), { code: 2, signal: null })
  t.equal(usage.err(), "spoa-tracer: Unknown argument: bogus\nTry 'spoa-tracer --help' for the options and the values they accept.\n", 'a usage slip also points at --help')
})

t.test('a port in use: one line, status 1, at once (no retry unless asked)', async (t) => {
  const { port } = await holdPort(t)
  const started = Date.now()
  const p = run(t, ['-p', String(port), '--exporter', 'none', '-i', '0'])
  t.same(await within(p.exit, 15_000, 'port in use'), { code: 1, signal: null })
  t.equal(p.err(), `spoa-tracer: --port: 127.0.0.1:${port} is already in use (another agent still stopping? --listen-retry waits for it)\n`)
  t.notMatch(p.out(), /"level":50|retry/, 'no error lines, no retries')
  t.ok(Date.now() - started < 8000, `gave up at once (${Date.now() - started} ms, a Node.js start included)`)
})

t.test('--listen-retry: one warning, then SIGTERM, SIGINT or -r end the wait', async (t) => {
  const { port } = await holdPort(t)
  const waiting = async (extra: string[]): Promise<Proc> => {
    const p = run(t, ['-p', String(port), '--exporter', 'none', '-i', '0', '--listen-retry', '30s', ...extra])
    await p.line((l) => l.msg === 'address in use; trying again until it is free (--listen-retry)')
    return p
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const p = await waiting([])
    const at = Date.now()
    p.child.kill(sig)
    t.same(await within(p.exit, 5000, sig), { code: 0, signal: null }, `${sig} during the retries: a normal stop`)
    t.ok(Date.now() - at < 3000, `${sig} honoured at once (${Date.now() - at} ms)`)
    t.match(p.out(), new RegExp(`"reason":"${sig}","msg":"stopped before listening"`))
    t.equal(p.err(), '', 'nothing on stderr, no MaxListenersExceededWarning')
    t.equal(p.lines().filter((l) => l.level === 40).length, 1, 'one warning for all the retries')
  }
  const r = await waiting(['-r', '1500ms'])
  t.same(await within(r.exit, 10_000, '-r during the retries'), { code: 0, signal: null })
  t.match(r.out(), /"reason":"runtime elapsed","msg":"stopped before listening"/)
})

t.test('--listen-retry: listens once the port is free', async (t) => {
  const held = await holdPort(t)
  const p = run(t, ['-p', String(held.port), '--exporter', 'none', '-i', '0', '--listen-retry', '30s'])
  await p.line((l) => l.msg === 'address in use; trying again until it is free (--listen-retry)')
  await new Promise<void>((resolve) => held.server.close(() => resolve()))
  await p.line((l) => l.msg === 'spoa-tracer started')
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 10_000, 'stop'), { code: 0, signal: null })
})

const linux = process.platform === 'linux' ? false : 'SCHED_IDLE is Linux only'

t.test('--cpu-sched idle: every thread of the agent, export workers included, runs under SCHED_IDLE; SPOE messages get a warning', { skip: linux }, async (t) => {
  // The OTLP exporter starts a worker thread: it must inherit the policy.
  const p = run(t, ['-p', '0', '--cpu-sched', 'idle', '--exporter', 'otlp', '--endpoint', 'http://127.0.0.1:9', '--log-intake', 'tcp://127.0.0.1:0', '-i', '0'])
  await p.line((l) => l.msg === 'spoa-tracer started')
  const policies = threadPolicies(p.child.pid!)
  t.ok(policies.length >= 3, `${policies.length} threads`)
  t.same([...new Set(policies)], [5], 'SCHED_IDLE (5) everywhere')
  // SPOE traffic to such an agent: answered, and the operator told once.
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port: await p.port() })
  t.teardown(() => h.destroy())
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'idle' })) h.notify(sid++, 1, messages)
  const warn = await p.line((l) => typeof l.msg === 'string' && l.msg.startsWith('SPOE messages while --cpu-sched idle'))
  t.equal(warn.level, 40, 'a warning')
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 10_000, 'stop'), { code: 0, signal: null })
})

t.test('--cpu-sched idle without chrt: one line, status 1, never listening; --check finds it (status 2)', { skip: linux }, async (t) => {
  const empty = tmp(t)
  const p = run(t, ['-p', '0', '--cpu-sched', 'idle', '--exporter', 'none', '-i', '0'], { PATH: empty })
  t.same(await within(p.exit, 15_000, 'refused'), { code: 1, signal: null })
  t.equal(p.err(), 'spoa-tracer: --cpu-sched idle: could not set SCHED_IDLE: chrt (util-linux) is not installed\n')
  t.notMatch(p.out(), /started/, 'never started')
  // --check says so beforehand, as a problem of the configuration.
  const c = run(t, ['--check', '-p', '0', '--cpu-sched', 'idle', '--exporter', 'none'], { PATH: empty })
  t.same(await within(c.exit, 15_000, '--check'), { code: 2, signal: null })
  t.equal(c.err(), 'spoa-tracer: --cpu-sched: idle: chrt (util-linux) is not installed (not found on PATH)\n')
  const ok = run(t, ['--check', '-p', '0', '--cpu-sched', 'idle', '--exporter', 'none'])
  t.same(await within(ok.exit, 15_000, '--check'), { code: 0, signal: null }, 'with chrt on PATH: valid')
})

t.test('--cpu-sched tracing-idle: the tracing thread runs under SCHED_IDLE, the main thread and the export worker keep their policy; no warning for SPOE', { skip: linux }, async (t) => {
  const p = run(t, ['-p', '0', '--cpu-sched', 'tracing-idle', '--exporter', 'otlp', '--endpoint', 'http://127.0.0.1:9', '-i', '0'])
  await p.line((l) => l.msg === 'spoa-tracer started')
  t.equal(threadPolicy(p.child.pid!, p.child.pid!), 0, 'the main thread, which answers HAProxy: SCHED_OTHER (0)')
  const policies = threadPolicies(p.child.pid!)
  t.equal(policies.filter((x) => x === 5).length, 1, 'SCHED_IDLE (5) for one thread: the tracing thread')
  t.ok(policies.filter((x) => x === 0).length >= 2, 'SCHED_OTHER for the others: main, the export worker, the helpers of node')
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port: await p.port() })
  t.teardown(() => h.destroy())
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'tracing-idle' })) {
    h.notify(sid++, 1, messages)
    t.equal((await h.next()).type, 'ack')
  }
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 10_000, 'stop'), { code: 0, signal: null })
  t.notMatch(p.out(), /SPOE messages while --cpu-sched/, 'SPOE is what tracing-idle is for: no warning')
  t.match(p.out(), /"msg":"stopped"/)
})

t.test('--cpu-sched tracing-idle without chrt: one line, status 1; with --log-intake: refused as a configuration (status 2)', { skip: linux }, async (t) => {
  const empty = tmp(t)
  const p = run(t, ['-p', '0', '--cpu-sched', 'tracing-idle', '--exporter', 'none', '-i', '0'], { PATH: empty })
  t.same(await within(p.exit, 15_000, 'refused'), { code: 1, signal: null })
  t.equal(p.err(), 'spoa-tracer: --cpu-sched tracing-idle: could not set SCHED_IDLE: chrt (util-linux) is not installed\n')
  t.notMatch(p.out(), /started/, 'never started')
  const c = run(t, ['-p', '0', '--cpu-sched', 'tracing-idle', '--log-intake', 'udp://127.0.0.1:0', '--exporter', 'none'])
  t.same(await within(c.exit, 15_000, 'refused'), { code: 2, signal: null })
  t.match(c.err(), /^spoa-tracer: --cpu-sched: tracing-idle is for SPOE and cannot take --log-intake/)
})

t.test('-D with a port in use: the launcher says why, with the status', async (t) => {
  const { port } = await holdPort(t)
  const dir = tmp(t)
  const p = run(t, ['-D', '-p', String(port), '--exporter', 'none', '-l', join(dir, 'agent.log')])
  t.same(await within(p.exit, 20_000, '-D'), { code: 1, signal: null })
  t.equal(p.err(), `spoa-tracer: --port: 127.0.0.1:${port} is already in use (another agent still stopping? --listen-retry waits for it)\n`)
})

t.test('--check: valid, without binding the port or creating a file', async (t) => {
  const { port } = await holdPort(t) // in use: --check must not care
  const dir = tmp(t)
  const p = run(t, [
    '--check', '-p', String(port), '-l', join(dir, 'agent.log'), '-F', join(dir, 'agent.pid'),
    '--exporter', 'file', '--output-file', join(dir, 'spans.jsonl'), '--metrics-address', String(await freePort()),
  ])
  t.same(await within(p.exit, 15_000, '--check'), { code: 0, signal: null })
  t.equal(p.out(), `spoa-tracer: configuration valid: listen 127.0.0.1:${port}, exporter file to ${join(dir, 'spans.jsonl')}\n`)
  t.equal(p.err(), '')
  t.same(readdirSync(dir), [], 'nothing created')
})

t.test('--check: every problem, one line each, status 2; secrets masked', async (t) => {
  const dir = tmp(t)
  const cfg = join(dir, 'agent.yml')
  const p = run(t, [
    '--check', '-l', join(dir, 'no', 'a.log'), '-a', 'nohost.invalid',
    '--endpoint', 'http://user:s3cret@nohost.invalid:4318?api_key=k3y', '--headers', 'authorization=Bearer%20t0ken',
  ])
  t.same(await within(p.exit, 15_000, '--check'), { code: 2, signal: null })
  t.equal(
    p.err(),
    [
      `spoa-tracer: --logfile: cannot open ${join(dir, 'no', 'a.log')}: directory ${join(dir, 'no')} does not exist`,
      'spoa-tracer: --address: cannot resolve "nohost.invalid": not an IP address, and no such host name',
      'spoa-tracer: --endpoint: cannot resolve the host of http://***@nohost.invalid:4318/v1/traces?api_key=***: not an IP address, and no such host name',
      '',
    ].join('\n'),
  )
  t.equal(p.out(), '')
  const ok = run(t, ['--check', '--endpoint', 'http://user:s3cret@127.0.0.1:4318?api_key=k3y', '--headers', 'authorization=Bearer%20t0ken'])
  t.same(await within(ok.exit, 15_000, '--check'), { code: 0, signal: null })
  t.equal(ok.out(), 'spoa-tracer: configuration valid: listen 127.0.0.1:12345, exporter otlp to http://***@127.0.0.1:4318/v1/traces?api_key=*** (http/protobuf)\n')
  const bad = run(t, ['--check', '-C', cfg])
  t.same(await within(bad.exit, 15_000, '--check -C'), { code: 2, signal: null })
  t.equal(bad.err(), `spoa-tracer: --ot-tracer-config: cannot read ${cfg}: ENOENT: no such file or directory, open '${cfg}'\n`, 'the configuration file too')
  t.same(readdirSync(dir), [], 'nothing created')
})

t.test('secrets: never in a log line, an error line or the metrics endpoint', async (t) => {
  const port = await freePort()
  const metrics = await freePort()
  const collector = await freePort() // nothing listens: every export fails, and says so
  const p = run(t, [
    '-p', String(port), '-d', 'debug', '-i', '200ms', '--batch-delay', '50ms', '--metrics-address', String(metrics),
    '--endpoint', `http://user:s3cret@127.0.0.1:${collector}?api_key=k3y`, '--headers', 'authorization=Bearer%20t0ken',
  ], { OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=env%20s3cret' })
  await p.line((l) => l.msg === 'spoa-tracer started')
  await waitForPort(port, 5000)
  const h = await FakeHaproxy.connect({ host: '127.0.0.1', port })
  t.teardown(() => h.destroy())
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'secret-run' })) h.notify(sid++, 1, messages)
  await p.line((l) => l.msg === 'export failed; the batch is kept and sent again')
  const bodies = await Promise.all(['/metrics', '/readyz', '/healthz'].map((path) => http({ host: '127.0.0.1', port: metrics }, path).then((r) => r.body)))
  p.child.kill('SIGTERM')
  await within(p.exit, 15_000, 'stop')
  const everything = [p.out(), p.err(), ...bodies].join('\n')
  for (const secret of ['s3cret', 't0ken', 'k3y', 'user:']) t.notOk(everything.includes(secret), `"${secret}" printed nowhere`)
  const started = p.lines().find((l) => l.msg === 'spoa-tracer started')!
  t.equal(started.endpoint, `http://***@127.0.0.1:${collector}/v1/traces?api_key=*** (http/protobuf)`)
  t.same(started.headers, { 'x-api-key': '***', authorization: '***' }, 'which headers are set, not their values')
  const config = p.lines().find((l) => l.msg === 'configuration') as { config: { export: { endpoint: string; headers: unknown } } }
  t.same([config.config.export.endpoint, config.config.export.headers], [`http://***@127.0.0.1:${collector}/v1/traces?api_key=***`, { 'x-api-key': '***', authorization: '***' }], 'debug output too')
  t.equal(p.lines().find((l) => l.msg === 'export failed; the batch is kept and sent again')!.target, `http://***@127.0.0.1:${collector}/v1/traces?api_key=***`)
})
