// End to end with the real HAProxy: the compact profile over HAProxy's log
// stream (haproxy/haproxy-compact-log.cfg, no SPOE filter) into the agent's
// log intake, over UDP, TCP (a ring, octet counting) and a unix datagram
// socket. Trees at the OTLP receiver; the server's parent is the CLIENT
// span HAProxy made; sampling; the operator's access log left unchanged
// (captured, and compared with the same configuration without our target);
// the agent killed, stopped and restarted: no request waits, spans resume.

import { type ChildProcess, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import type { LogAddress } from '../../src/intake/log/index.js'
import { unixDgram } from '../../src/intake/log/unix-dgram.js'
import { startDaemon } from '../../src/daemon/main.js'
import { exportIdle, spansBeforeMarker } from '../helpers/stack.js'
import { haproxyAtLeast, startHaproxy } from '../../harness/haproxy.js'
import { freePort } from '../../harness/ports.js'
import { median } from '../../harness/report.js'
import { checkUnsampledContext, requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { silentLogger } from '../helpers/logger.js'
import { type Origin, startOrigin } from '../helpers/origin.js'
import { OtlpSpanKind, type OtlpReceiver, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'
import { threadPolicies } from '../../src/daemon/cpu-sched.js'

const bin = requireHaproxy(t)
const skip = bin === null
const v31 = bin !== null && haproxyAtLeast(bin, 3, 1)
const CFG = 'haproxy/haproxy-compact-log.cfg'
const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const P = '00f067aa0ba902b7'
const parts = (tp: unknown) => String(tp).split('-')

const tmp = (t: Test): string => {
  const d = mkdtempSync(join(tmpdir(), 'spoa-log-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** The agent in-process, its log intake on `intake` (a port of 0 picks one). */
async function agent(t: Test, receiver: OtlpReceiver, intake: LogAddress) {
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_CONFIG.export, exporter: 'otlp', endpoint: receiver.tracesUrl, scheduledDelayMs: 50 },
      logIntake: { ...DEFAULT_CONFIG.logIntake, addresses: [intake] },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  return daemon
}

async function haproxy(t: Test, origin: Origin, env: Record<string, string>, configs: string[] = [CFG]) {
  const h = await startHaproxy({
    bin: bin!,
    config: configs,
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: { BACKEND_ADDR: `127.0.0.1:${origin.port}`, ...env },
  })
  t.teardown(() => h.stop())
  return { h, fePort: h.port }
}

/** HAProxy with the shipped file (after `before`, e.g. an operator's global log targets), the agent, an origin and a receiver. */
async function stack(t: Test, transport: 'udp' | 'tcp' | 'unix', env: Record<string, string> = {}, before: string[] = []) {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const intake: LogAddress =
    transport === 'unix' ? { transport, path: join(tmp(t), 'log.sock') } : { transport, host: '127.0.0.1', port: 0 }
  const daemon = await agent(t, receiver, intake)
  const bound = daemon.logIntake!.addresses[0]!
  const target: Record<string, string> =
    bound.transport === 'unix'
      ? { SPOA_LOG_TARGET: bound.path }
      : bound.transport === 'tcp'
        ? { SPOA_LOG_TCP: `127.0.0.1:${bound.port}` }
        : { SPOA_LOG_TARGET: `127.0.0.1:${bound.port}` }
  const { fePort } = await haproxy(t, origin, { ...target, ...env }, [...before, CFG])
  if (transport === 'tcp') t.ok(await eventually(() => daemon.logIntake!.stats.tcpConnectionsOpen === 1, 10_000), "the ring's forwarder connected")
  const request = async (path: string, headers: Record<string, string> = {}, expectSpans = true) => {
    receiver.clear()
    const res = await get(`http://127.0.0.1:${fePort}${path}`, headers)
    t.equal(res.status, 200, `${path}: 200`)
    const seen = origin.requests.find((r) => r.url === path) ?? origin.requests.find((r) => r.url?.startsWith(path.split("?")[0]!))!
    if (expectSpans) await receiver.waitForSpans(3, 10_000)
    else markers++
    const all = expectSpans ? (await exportIdle(daemon), receiver.spans.slice()) : await spansBeforeMarker(receiver, daemon, fePort)
    const byKind = (k: number) => all.find((s) => s.kind === k)
    return { all, server: byKind(OtlpSpanKind.SERVER), client: byKind(OtlpSpanKind.CLIENT), backend: seen.headers }
  }
  /** Traced requests the tests made (each "no span" check sends a traced marker after its request). */
  let markers = 0
  return { request, daemon, receiver, markers: () => markers }
}

for (const transport of ['udp', 'tcp', 'unix'] as const) {
  const noUnix = transport === 'unix' && unixDgram() === null ? 'node-unix-socket (optional) is not installed' : false
  t.test(`log intake over ${transport}: trees, propagation to the server, hostile values`, { skip: skip || noUnix }, async (t) => {
    const { request, daemon, markers } = await stack(t, transport)
    const ua = 'a "q" ]b\\c é 𝄞 [x="y"]'
    // Node.js sends header bytes as latin1: the UTF-8 bytes of ua, as a client would.
    const joined = await request('/joined?x="1"]', { traceparent: `00-${T}-${P}-01`, tracestate: 'rojo=1', 'user-agent': Buffer.from(ua).toString('latin1') })
    const names = new Set(joined.all.map((s) => s.name))
    for (const n of ['GET http-in', 'GET app', 'server response']) t.ok(names.has(n), `span ${n}`)
    t.same(new Set(joined.all.map((s) => s.traceId)), new Set([T]))
    t.equal(joined.server!.parentSpanId, P, 'the server span continues the incoming one')
    const [, tid, pid, flags] = parts(joined.backend.traceparent)
    t.same([tid, pid, flags], [T, joined.client!.spanId, '01'], "the server's parent is the CLIENT span HAProxy made")
    t.equal(joined.client!.parentSpanId, joined.server!.spanId)
    t.has(joined.server!.attributes, {
      'http.request.method': 'GET',
      'url.path': '/joined',
      'url.query': 'x=%221%22]', // Node.js encodes the quotes; HAProxy passes ] as it came
      'user_agent.original': ua,
      'http.response.status_code': 200,
      'client.address': '127.0.0.1',
      'haproxy.frontend': 'http-in',
    })
    t.equal(joined.server!.traceState, 'rojo=1')
    t.equal(joined.client!.attributes['haproxy.server'], 'app1')

    const fresh = await request('/fresh')
    t.same(parts(fresh.backend.traceparent).slice(1, 3), [fresh.server!.traceId, fresh.client!.spanId], 'a new trace, HAProxy-made')
    t.equal(fresh.server!.parentSpanId, '')

    const unsampled = await request('/unsampled', { traceparent: `00-${T}-${P}-00` }, false)
    t.equal(unsampled.all.length, 0, 'sampled=0: no span')
    const health = await request('/healthz', {}, false)
    t.equal(health.all.length, 0, 'health checks are not traced')

    const s = daemon.logIntake!.stats
    t.equal(s.traced, 2 + markers())
    t.same(Object.fromEntries(s.rejected), {}, 'no record rejected')
    // 3.1+: our log-profile sends nothing for a request not traced; 2.6 logs every request.
    if (v31) t.equal(s.untraced, 0, 'no record for untraced requests')
    else t.ok(s.untraced >= 2, `untraced requests still send a record (2.6): ${s.untraced}`)
    t.equal(daemon.trees.size, 0, 'the agent kept no state')
  })
}

t.test('sampling: SPOA_SAMPLE_PERCENT=0 traces only requests with a sampled parent', { skip }, async (t) => {
  const { request, daemon, markers } = await stack(t, 'udp', { SPOA_SAMPLE_PERCENT: '0' })
  const none = await request('/new', {}, false)
  t.equal(none.all.length, 0)
  checkUnsampledContext(t, none.backend.traceparent, 'the context still goes on, not sampled')
  const parent = await request('/parent', { traceparent: `00-${T}-${P}-01` })
  t.equal(parent.server!.traceId, T, 'a sampled parent is honoured')
  t.equal(daemon.logIntake!.stats.traced, 1 + markers())
})

t.test('HAProxy 2.6, SPOA_LOG_TRACED_ONLY=1: untraced requests send nothing to our target', { skip: skip || v31 ? 'HAProxy 2.6 only (3.1+ always does)' : false }, async (t) => {
  const { request, daemon, markers } = await stack(t, 'udp', { SPOA_LOG_TRACED_ONLY: '1', SPOA_SAMPLE_PERCENT: '0' })
  await request('/new', {}, false)
  await request('/parent', { traceparent: `00-${T}-${P}-01` })
  t.same([daemon.logIntake!.stats.records, daemon.logIntake!.stats.traced], [1 + markers(), 1 + markers()])
})

t.test('SPOA_LOG_ACCESS=0: only traced requests are logged, only to our target', { skip }, async (t) => {
  // An operator's global log target, which the file's `log global` would copy: this frontend no longer sends it anything.
  const operator = await captureLog(t)
  const global = join(tmp(t), 'operator.cfg')
  writeFileSync(global, `global\n    log 127.0.0.1:${operator.port} local0 info\n`)
  for (const transport of ['udp', 'tcp'] as const) {
    const { request, daemon, markers } = await stack(t, transport, { SPOA_LOG_ACCESS: '0', SPOA_SAMPLE_PERCENT: '0' }, [global])
    const joined = await request('/joined', { traceparent: `00-${T}-${P}-01` })
    t.same(new Set(joined.all.map((s) => s.traceId)), new Set([T]), `${transport}: a tree`)
    t.equal(joined.server!.parentSpanId, P)
    t.same(parts(joined.backend.traceparent).slice(1, 3), [T, joined.client!.spanId], "the server's parent is the CLIENT span")
    t.has(joined.server!.attributes, { 'url.path': '/joined', 'http.response.status_code': 200, 'haproxy.frontend': 'http-in' })
    const none = await request('/new', {}, false)
    t.equal(none.all.length, 0, 'not picked: no span')
    checkUnsampledContext(t, none.backend.traceparent, 'the context still goes on, not sampled')
    await request('/unsampled', { traceparent: `00-${T}-${P}-00` }, false)
    const s = daemon.logIntake!.stats
    t.same({ records: s.records, traced: s.traced, untraced: s.untraced, rejected: Object.fromEntries(s.rejected) }, { records: 1 + markers(), traced: 1 + markers(), untraced: 0, rejected: {} }, 'a record per traced request, nothing else')
  }
  t.same(operator.lines.filter((l) => l.includes('GET') || l.includes('traceparent')), [], "the operator's global target got nothing from this frontend")
})

/** HAProxy's access log, as an operator's syslog receives it. */
async function captureLog(t: Test) {
  const lines: string[] = []
  const s = createSocket('udp4')
  s.on('message', (m) => lines.push(m.toString()))
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()))
  t.teardown(() => s.close())
  return { lines, port: s.address().port }
}

t.test("the operator's access log is left unchanged", { skip }, async (t) => {
  const dir = tmp(t)
  // The shipped file without our target: what the operator had before.
  const without = join(dir, 'without.cfg')
  writeFileSync(without, readFileSync(CFG, 'utf8').replace(/# ---- BEGIN the spoa-tracer log target[\s\S]*?# ---- END the spoa-tracer log target\n/, ''))
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const daemon = await agent(t, receiver, { transport: 'udp', host: '127.0.0.1', port: 0 })
  const port = (daemon.logIntake!.addresses[0] as { port: number }).port
  const origin = await startOrigin()
  t.teardown(() => origin.close())

  const masked = (line: string) =>
    line
      .replace(/^(<\d+>)\w{3} [ \d]\d \d\d:\d\d:\d\d /, '$1DATE ') // the syslog header's date
      .replace(/^(<\d+>1) \S+ /, '$1 DATE ') // RFC 5424's
      .replace(/haproxy(\[| )\d+/, 'haproxy$1PID')
      .replace(/127\.0\.0\.1:\d+ \[[^\]]+\]/, 'CLIENT [ACCEPT]')
      .replace(/ -?\d+\/-?\d+\/-?\d+\/-?\d+\/-?\d+ /, ' TIMERS ')
      // The connection counts after the termination state: the harness's readiness probe may still be counted.
      .replace(/ (\S{4}) \d+\/\d+\/\d+\/\d+\/\+?\d+ /, ' $1 CONNS ')
  const run = async (cfg: string) => {
    const local = await captureLog(t)
    const rfc5424 = await captureLog(t)
    // The operator's own log targets, parsed before the shipped file (whose `log global` copies them).
    const operator = join(dir, `operator-${local.port}.cfg`)
    writeFileSync(operator, `global\n    log 127.0.0.1:${local.port} local0 info\n    log 127.0.0.1:${rfc5424.port} format rfc5424 local1 info\n`)
    const { h, fePort } = await haproxy(t, origin, { SPOA_LOG_TARGET: `127.0.0.1:${port}` }, [operator, cfg])
    for (const [path, headers] of [
      ['/a?q=1', { traceparent: `00-${T}-${P}-01` }],
      ['/b', {}],
      ['/c?status=503', {}],
      ['/healthz', {}],
    ] as const) {
      const res = await get(`http://127.0.0.1:${fePort}${path}`, { 'user-agent': 'ua-x', ...headers })
      t.ok(res.status === 200 || res.status === 503)
    }
    t.ok(await eventually(() => [local, rfc5424].every((c) => c.lines.filter((l) => l.includes('"GET ')).length >= 4), 5000), 'the access log lines arrived')
    await h.stop()
    // Requests only (HAProxy may log other events, the same in both runs).
    const requests = (lines: string[]) => lines.filter((l) => l.includes('"GET ')).map(masked)
    return { local: requests(local.lines), rfc5424: requests(rfc5424.lines) }
  }
  const before = await run(without)
  const tracedBefore = daemon.logIntake!.stats.traced
  const after = await run(CFG)
  t.ok(daemon.logIntake!.stats.traced > tracedBefore, 'our target got records meanwhile')
  t.equal(after.local.length, 4, 'one line per request, as before')
  t.same(after.local, before.local, 'the same lines, severity included (masked: dates, pid, client port, timers, connection counts)')
  t.match(before.local[0], /http-in app\/app1 TIMERS 200 .*"GET \/a\?q=1 HTTP\/1\.1"/)
  if (v31) t.same(after.rfc5424, before.rfc5424, 'an RFC 5424 target of the operator too: no structured data added (log-profile)')
  else t.match(after.rfc5424[0], /\[spoa-tracer@32473 /, 'HAProxy 2.6: an RFC 5424 target of the operator also shows the record (documented)')
})

interface AgentProc {
  child: ChildProcess
  stop(): Promise<void>
}

/** The agent as its own process (bin/spoa-tracer), so that it can be killed and stopped. */
async function agentProcess(t: Test, receiver: OtlpReceiver, intake: string, extra: string[] = []): Promise<AgentProc> {
  const child = spawn(process.execPath, ['bin/spoa-tracer', '-p', '0', '-i', '0', '--log-intake', intake, '--endpoint', receiver.tracesUrl, '--batch-delay', '50', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(stop)
  if (!(await eventually(() => out.includes('listening for HAProxy log records') || child.exitCode !== null, 20_000))) throw new Error(`agent did not start:\n${out}`)
  if (child.exitCode !== null) throw new Error(`agent exited:\n${out}`)
  return { child, stop }
}

for (const transport of ['udp', 'tcp'] as const) {
  // Over TCP the agent runs as haproxy/README.md advises for an agent that
  // only takes the log stream: under SCHED_IDLE.
  const extra = transport === 'tcp' ? ['--cpu-sched', 'idle'] : []
  t.test(`the agent killed, stopped (SIGSTOP) and restarted (${transport}${extra.length > 0 ? ', --cpu-sched idle' : ''}): no request waits, spans resume`, { skip }, async (t) => {
    const receiver = await startOtlpReceiver()
    t.teardown(() => receiver.close())
    const origin = await startOrigin()
    t.teardown(() => origin.close())
    const port = await freePort()
    const intake = `${transport}://127.0.0.1:${port}`
    let a = await agentProcess(t, receiver, intake, extra)
    if (extra.length > 0) t.same([...new Set(threadPolicies(a.child.pid!))], [5], 'every thread of the agent under SCHED_IDLE')
    const { fePort } = await haproxy(t, origin, transport === 'tcp' ? { SPOA_LOG_TCP: `127.0.0.1:${port}` } : { SPOA_LOG_TARGET: `127.0.0.1:${port}` })
    const timed = async (n: number, tag: string) => {
      const ms: number[] = []
      for (let i = 0; i < n; i++) {
        const t0 = performance.now()
        const res = await get(`http://127.0.0.1:${fePort}/${tag}-${i}`, {}, 5000)
        ms.push(performance.now() - t0)
        t.equal(res.status, 200)
      }
      return ms
    }
    const spansOf = (tag: string) => receiver.spans.filter((s) => s.kind === OtlpSpanKind.SERVER && String(s.attributes['url.path']).startsWith(`/${tag}-`)).length
    const baseline = await timed(20, 'up')
    t.ok(await eventually(() => spansOf('up') === 20, 10_000), 'spans while the agent runs')

    a.child.kill('SIGSTOP')
    t.teardown(() => a.child.kill('SIGCONT'))
    // More than a TCP ring's forwarder can push into a stopped agent's socket buffers.
    const stopped = await timed(transport === 'tcp' ? 300 : 40, 'stopped')
    t.ok(median(stopped) < median(baseline) + 20, `stopped agent: median ${median(stopped).toFixed(1)} ms, with it running ${median(baseline).toFixed(1)} ms`)
    t.ok(Math.max(...stopped) < 1000, `no request waited: slowest ${Math.max(...stopped).toFixed(1)} ms`)
    a.child.kill('SIGCONT')

    await a.stop()
    const down = await timed(20, 'down')
    t.ok(median(down) < median(baseline) + 20, `agent killed: median ${median(down).toFixed(1)} ms`)
    t.ok(Math.max(...down) < 1000)

    a = await agentProcess(t, receiver, intake, extra)
    // TCP: the ring's forwarder reconnects by itself (its server's connect retries).
    const back = async () => {
      await timed(5, 'back')
      return eventually(() => spansOf('back') > 0, 1000)
    }
    let resumed = false
    for (let i = 0; i < 20 && !resumed; i++) resumed = await back()
    t.ok(resumed, 'spans resume once the agent is back')
  })
}
