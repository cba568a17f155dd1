// Installed the way an operator installs it: `npm pack` of a clean copy of
// the project (its prepack builds dist/), `npm install -g` of the tarball
// into a temporary prefix, then the installed `spoa-tracer` command, run as
// its own process from outside the checkout, behind the real HAProxy with
// the installed package's HAProxy configuration; spans checked at the OTLP
// receiver. Also: what the tarball holds, that the production dependencies
// are complete, --print-share-dir, SIGTERM, and the systemd unit.

import { execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import t, { type Test } from 'tap'
import ts from 'typescript'
import { haproxyAtLeast, startHaproxy } from '../../harness/haproxy.js'
import { freePort } from '../../harness/ports.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { startOrigin } from '../helpers/origin.js'
import { type ReceivedSpan, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { alive } from '../../harness/process.js'
import { eventually } from '../../harness/wait.js'

const ROOT = resolve(import.meta.dirname, '..', '..')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string> }
// Not part of a clean clone (or never packed): left out of the copy that is packed.
const NOT_IN_A_CLONE = new Set(['node_modules', 'dist', '.tap', '.git', 'tmp', 'demo-output', 'spans.jsonl'])

const haproxyBin = requireHaproxy(t)
const skip = haproxyBin === null
// HAProxy 3.3 removed the `program` section: the systemd unit is the way there.
const skipMw = skip ? true : haproxyAtLeast(haproxyBin, 3, 3) ? 'HAProxy 3.3+ has no program section' : false

const work = mkdtempSync(join(tmpdir(), 'spoa-install-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const prefix = join(work, 'prefix')
const installedBin = join(prefix, 'bin', 'spoa-tracer')
const share = join(prefix, 'lib', 'node_modules', PKG.name)

/**
 * The environment of every child: no tap loader (NODE_OPTIONS), no module
 * path that could hide a missing dependency (NODE_PATH), no npm_* settings
 * of the `npm test` around this test (they would point npm at the checkout),
 * and this test's node first on PATH for the bin's `exec node` line.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_PATH' || /^npm_/i.test(k) || k.startsWith('TAP')) continue
    env[k] = v
  }
  env.PATH = `${dirname(process.execPath)}:${env.PATH ?? '/usr/bin:/bin'}`
  return { ...env, ...extra }
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

/** Runs a command to its end, bounded: killed after `timeoutMs`. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  const start = Date.now()
  return new Promise((done) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      done({ code, stdout, stderr: err !== null && code === null ? `${stderr}\n${err.message}` : stderr, ms: Date.now() - start })
    })
  })
}

let tarball: string | null = null
let installed = false

t.test('npm pack builds the package and ships what it needs, nothing else', async (t) => {
  const copy = join(work, 'clone')
  cpSync(ROOT, copy, { recursive: true, filter: (src) => !NOT_IN_A_CLONE.has(relative(ROOT, src).split('/')[0]!) })
  // The build needs the devDependencies (TypeScript); the copy borrows them.
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir')
  const r = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: copy, timeoutMs: 120_000 })
  t.equal(r.code, 0, `npm pack succeeded (${r.ms} ms)`) || t.comment(r.stderr)
  if (r.code !== 0) return
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>
  const files = info!.files.map((f) => f.path).sort()
  tarball = join(work, info!.filename)
  t.ok(existsSync(tarball), info!.filename)

  for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/spoa-tracer', 'dist/src/daemon/run.js', 'dist/src/daemon/cli.js', 'dist/src/export/worker.js',
    'haproxy/README.md', 'haproxy/haproxy.cfg', 'haproxy/haproxy-mw.cfg', 'haproxy/haproxy-compact.cfg', 'haproxy/spoe.cfg',
    'haproxy/spoe-propagation.cfg', 'haproxy/spoe-compact.cfg', 'contrib/spoa-tracer.service', 'contrib/logrotate']) {
    t.ok(files.includes(f), `ships ${f}`)
  }
  const unwanted = files.filter((f) => !/^(package\.json|README\.md|LICENSE|bin\/spoa-tracer|dist\/src\/.+\.js|haproxy\/[^/]+\.cfg|haproxy\/README\.md|contrib\/[^/]+)$/.test(f))
  t.same(unwanted, [], 'nothing else: no tests, benchmarks, sources, source maps or declarations')
  // What prepack built, not a stale dist/ (the copy had none).
  t.same(
    files.filter((f) => f.startsWith('dist/src/')).length,
    listTs(join(ROOT, 'src')).length,
    'one compiled file per source file of src/',
  )
  t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004/)
})

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listTs(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  )
}

t.test('npm install -g of the tarball gives a working spoa-tracer command', async (t) => {
  if (tarball === null) return t.fail('no tarball (npm pack failed)')
  // From the npm cache when it holds everything (it does after `npm ci` here);
  // from the registry for what it lacks.
  let r: Run | null = null
  for (const mode of ['--offline', '--prefer-offline']) {
    rmSync(prefix, { recursive: true, force: true })
    r = await run('npm', ['install', '-g', '--prefix', prefix, mode, '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: work, timeoutMs: 120_000 })
    t.comment(`npm install -g ${mode}: exit ${r.code} (${r.ms} ms)`)
    if (r.code === 0) break
  }
  t.equal(r!.code, 0, 'npm install -g succeeded') || t.comment(r!.stderr)
  if (r!.code !== 0) return
  t.ok(lstatSync(installedBin).isSymbolicLink(), `${relative(work, installedBin)} is npm's link into the package`)

  const version = await run(installedBin, ['--version'], { cwd: work, timeoutMs: 20_000 })
  t.equal(version.stdout.trim(), `spoa-tracer ${PKG.version}`, 'spoa-tracer --version, through the symlinked bin')
  const shareDir = await run(installedBin, ['--print-share-dir'], { cwd: work, timeoutMs: 20_000 })
  t.equal(shareDir.stdout.trim(), realpathSync(share), '--print-share-dir prints the installed package directory')
  t.ok(existsSync(join(shareDir.stdout.trim(), 'haproxy', 'spoe.cfg')) && existsSync(join(shareDir.stdout.trim(), 'contrib', 'spoa-tracer.service')))

  // Every package the compiled code imports loads from the installed package
  // alone: nothing comes from the devDependencies or from the checkout.
  t.notOk(existsSync(join(share, 'node_modules', 'typescript')) || existsSync(join(share, 'node_modules', 'tap')), 'no devDependency installed')
  const specs = new Set<string>()
  for (const f of listJs(join(share, 'dist', 'src'))) {
    for (const { fileName } of ts.preProcessFile(readFileSync(f, 'utf8'), true, true).importedFiles) {
      if (!fileName.startsWith('.') && !fileName.startsWith('node:')) specs.add(fileName)
    }
  }
  t.ok(specs.has('yargs') && specs.has('pino') && specs.has('@opentelemetry/otlp-transformer'), `${specs.size} packages imported`)
  const packageOf = (spec: string): string => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/')
  t.same([...specs].filter((s) => !(packageOf(s) in PKG.dependencies)), [], 'each one a declared production dependency')
  const probe = join(share, 'import-probe.mjs')
  writeFileSync(probe, `for (const s of ${JSON.stringify([...specs])}) await import(s)\n`)
  const imported = await run(process.execPath, [probe], { cwd: work, timeoutMs: 30_000 })
  rmSync(probe)
  t.equal(imported.code, 0, 'every import of dist/src resolves in the installed package') || t.comment(imported.stderr)
  installed = true
})

function listJs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listJs(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []))
}

function checkTraces(t: Test, spans: ReceivedSpan[], urls: string[]): void {
  const byTrace = new Map<string, ReceivedSpan[]>()
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s])
  const complete = [...byTrace.values()]
    .filter((trace) => trace.length === 9 && trace.every((s) => !s.attributes['spoa_tracer.incomplete']))
    .map((trace) => String(trace.find((s) => s.name === 'Frontend HTTP request')?.attributes['http.url']))
  t.same(complete.sort(), [...urls].sort(), 'one complete 9-span tree per request')
  t.equal(spans.length, urls.length * 9, 'no other span')
}

t.test('the installed spoa-tracer behind HAProxy with the installed configuration', { skip }, async (t) => {
  if (!installed) return t.fail('not installed')
  const bin = haproxyBin!
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentPort = await freePort()

  // The bin as npm linked it, started from outside the checkout.
  const agent = spawn(
    installedBin,
    ['--port', String(agentPort), '--endpoint', receiver.url, '--batch-delay', '50ms', '--monitor-interval', '0', '--log-format', 'json', '--shutdown-timeout', '5s'],
    { cwd: work, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let log = ''
  agent.stdout.on('data', (d: Buffer) => (log += d.toString()))
  agent.stderr.on('data', (d: Buffer) => (log += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => agent.once('exit', (code, signal) => r({ code, signal })))
  t.teardown(() => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL')
  })
  t.ok(await eventually(() => log.includes('"msg":"spoa-tracer started"') || agent.exitCode !== null, 20_000), 'the agent started')
  if (!log.includes('"msg":"spoa-tracer started"')) return t.fail(`the agent did not start:\n${log}`)

  // The installed configuration, from a directory where no relative default resolves.
  const conf = join(realpathSync(share), 'haproxy')
  const haproxy = await startHaproxy({
    bin,
    cwd: work,
    config: join(conf, 'haproxy.cfg'),
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_ADDR: `127.0.0.1:${agentPort}`,
      SPOE_CONF: join(conf, 'spoe.cfg'),
      SPOA_TIMEOUT_PROCESSING: '2s',
    },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())

  const urls = ['/install/0', '/install/1?x=1', '/install/2']
  for (const u of urls) t.equal((await get(`http://127.0.0.1:${fePort}${u}`)).status, 200, `GET ${u}`)
  await receiver.waitForSpans(urls.length * 9, 15_000)
  checkTraces(t, receiver.spans, urls)
  const s = receiver.spanNamed('HAProxy session')
  t.equal(s.resource['service.name'], 'haproxy')
  t.same([s.scope.name, s.scope.version], ['spoa-tracer', PKG.version], 'instrumentation scope: the installed package')

  // systemd's stop: SIGTERM, a graceful exit 0 within --shutdown-timeout.
  const stopAt = Date.now()
  agent.kill('SIGTERM')
  const how = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))])
  t.same(how, { code: 0, signal: null }, `SIGTERM: exit 0 (${Date.now() - stopAt} ms)`)
  t.ok(Date.now() - stopAt < 5000 + 2000, 'within --shutdown-timeout 5s')
  t.match(log, /"reason":"SIGTERM"/)
  t.match(log, /"msg":"stopped"/)
  t.notMatch(log, /"level":(50|60)/, 'no error logged')
})

t.test('the installed spoa-tracer receives the log stream on a unix datagram socket (its optional package came with it)', { skip }, async (t) => {
  if (!installed) return t.fail('not installed')
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const sock = join(work, 'log.sock')
  const agent = spawn(installedBin, ['--port', '0', '--log-intake', `unix:${sock}`, '--endpoint', receiver.url, '--batch-delay', '50ms', '-i', '0', '--log-format', 'json'], {
    cwd: work,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  agent.stdout.on('data', (d: Buffer) => (log += d.toString()))
  agent.stderr.on('data', (d: Buffer) => (log += d.toString()))
  t.teardown(() => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL')
  })
  t.ok(await eventually(() => log.includes('"msg":"spoa-tracer started"') || agent.exitCode !== null, 20_000), 'the agent started')
  if (!log.includes('"msg":"spoa-tracer started"')) return t.fail(`the agent did not start:\n${log}`)
  const conf = join(realpathSync(share), 'haproxy')
  const haproxy = await startHaproxy({
    bin: haproxyBin!,
    cwd: work,
    config: join(conf, 'haproxy-compact-log.cfg'),
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: { BACKEND_ADDR: `127.0.0.1:${origin.port}`, SPOA_LOG_TARGET: sock },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())
  t.equal((await get(`http://127.0.0.1:${fePort}/install/log`)).status, 200)
  await receiver.waitForSpans(3, 15_000)
  t.equal(receiver.spanNamed('GET http-in').attributes['url.path'], '/install/log')
})

t.test('haproxy-mw.cfg from the package directory: the relative defaults and spoa-tracer on PATH', { skip: skipMw }, async (t) => {
  if (!installed) return t.fail('not installed')
  const bin = haproxyBin!
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentPort = await freePort()
  const agentLog = join(work, 'mw-agent.log')
  const env = cleanEnv({ PATH: `${join(prefix, 'bin')}:${cleanEnv().PATH}` })
  // As README says: cd "$(spoa-tracer --print-share-dir)" && haproxy -W -f haproxy/haproxy-mw.cfg.
  // Neither SPOA_TRACER nor SPOE_CONF is set: the defaults must work.
  const haproxy = await startHaproxy({
    bin,
    cwd: realpathSync(share),
    config: 'haproxy/haproxy-mw.cfg',
    args: ['-W'],
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      ...(env as Record<string, string>),
      NODE_OPTIONS: '',
      NODE_PATH: '',
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_PORT: String(agentPort),
      SPOA_TRACER_LOG: `a:${agentLog}`,
      SPOA_TRACER_MONITOR: '0',
      SPOA_TIMEOUT_PROCESSING: '2s',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())
  const started = (): string | undefined =>
    existsSync(agentLog) ? readFileSync(agentLog, 'utf8').split('\n').find((l) => l.includes('"msg":"spoa-tracer started"')) : undefined
  t.ok(await eventually(() => started() !== undefined, 20_000), 'HAProxy started the installed agent') || t.comment(haproxy.output())
  const line = started()
  if (line === undefined) return
  const agentPid = (JSON.parse(line) as { pid: number }).pid
  t.teardown(() => {
    if (alive(agentPid)) process.kill(agentPid, 'SIGKILL')
  })
  // HAProxy's first check may have run before the agent listened (then rise 1
  // and downinter 500ms bring it back); a request before that is not traced.
  const deadline = Date.now() + 15_000
  let sent = 0
  while (receiver.spans.length < 9 && Date.now() < deadline) {
    t.equal((await get(`http://127.0.0.1:${fePort}/mw/${sent++}`)).status, 200)
    await eventually(() => receiver.spans.length >= 9, 1000)
  }
  t.equal(new Set(receiver.spans.map((s) => s.traceId)).size * 9, receiver.spans.length, `a complete 9-span tree (${sent} requests sent)`)
  t.ok(receiver.spans.length >= 9)
  process.kill(haproxy.pid, 'SIGTERM')
  t.ok(await eventually(() => !alive(agentPid), 15_000), 'the agent stops with HAProxy')
})

t.test('the systemd unit runs the installed binary', async (t) => {
  if (!installed) return t.fail('not installed')
  const unit = readFileSync(join(share, 'contrib', 'spoa-tracer.service'), 'utf8')
  const value = (key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim())
  const execStart = value('ExecStart')
  t.equal(execStart.length, 1)
  t.match(execStart[0], /^spoa-tracer /, "ExecStart names the command npm installed: systemd finds it in /usr/local/bin or /usr/bin")
  t.same([value('Restart'), value('DynamicUser'), value('RuntimeDirectory'), value('LogsDirectory')], [['on-failure'], ['yes'], ['spoa-tracer'], ['spoa-tracer']])
  const shutdownS = Number(/--shutdown-timeout (\d+)s/.exec(execStart[0]!)?.[1])
  const stopS = Number(/^(\d+)s$/.exec(value('TimeoutStopSec')[0] ?? '')?.[1])
  t.ok(stopS > shutdownS, `TimeoutStopSec (${stopS}s) leaves the agent its --shutdown-timeout (${shutdownS}s) before SIGKILL`)

  const analyze = await run('sh', ['-c', 'command -v systemd-analyze'], { cwd: work, timeoutMs: 5000 })
  if (analyze.code !== 0) {
    t.comment('systemd-analyze is not installed: the unit was not verified by systemd')
    return
  }
  // As installed: ExecStart resolved the way systemd resolves it, to the installed binary.
  const copy = join(work, 'spoa-tracer.service')
  writeFileSync(copy, unit.replace(/^ExecStart=spoa-tracer /m, `ExecStart=${installedBin} `))
  const v = await run('systemd-analyze', ['verify', copy], { cwd: work, timeoutMs: 30_000 })
  t.equal(v.code, 0, 'systemd-analyze verify')
  t.equal(v.stderr.trim(), '', 'no warning (unknown key, bad value)')
})
