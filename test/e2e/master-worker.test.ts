// HAProxy launches the agent itself (haproxy/haproxy-mw.cfg, master-worker
// `program` section). Traffic flows and spans arrive; a reload under traffic
// loses no request and leaves every trace complete; the agent survives the
// reload (HAProxy 2.6 sends it SIGUSR1 then) and never opens Node's
// inspector; a soft-stop and a hard stop of HAProxy both end the agent
// cleanly, with its spans flushed.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { haproxyAtLeast, startHaproxy } from '../../harness/haproxy.js'
import { waitServerUp } from '../../harness/haproxy-stats.js'
import { freePort, waitForPort } from '../../harness/ports.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { alive } from '../../harness/process.js'
import { startOrigin } from '../helpers/origin.js'
import { type ReceivedSpan, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
// HAProxy 3.3 removed the `program` section: there the agent runs under
// systemd (contrib/spoa-tracer.service) and this file has nothing to test.
const skip = bin === null ? true : haproxyAtLeast(bin, 3, 3) ? 'HAProxy 3.3+ has no program section (master-worker launch)' : false

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-mw-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentPort = await freePort()
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
      SPOA_TIMEOUT_PROCESSING: '2s',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())
  await waitForPort(agentPort, 10_000)
  const startedLines = () => readFileSync(agentLog, 'utf8').split('\n').filter((l) => l.includes('"spoa-tracer started"'))
  t.ok(await eventually(() => existsSync(agentLog) && startedLines().length === 1, 10_000), 'the agent started')
  const agentPid = (JSON.parse(startedLines()[0]!) as { pid: number }).pid
  // HAProxy's health check must have seen the agent up before the first request (srv_is_up() guards the events).
  await waitServerUp(haproxy.stats, 'spoa-tracer', 'agent')
  return { dir, receiver, origin, fePort, agentLog, haproxy, agentPid, startedLines }
}


function checkTraces(t: Test, spans: ReceivedSpan[], urls: string[]): void {
  const byTrace = new Map<string, ReceivedSpan[]>()
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s])
  const complete = new Set<string>()
  for (const trace of byTrace.values()) {
    const url = trace.find((s) => s.name === 'Frontend HTTP request')?.attributes['http.url']
    if (trace.length === 9 && trace.every((s) => !s.attributes['spoa_tracer.incomplete'])) complete.add(String(url))
  }
  const missing = urls.filter((u) => !complete.has(u))
  t.same(missing, [], `every request has a complete 9-span trace (${urls.length} requests)`)
  t.equal(spans.length, urls.length * 9, 'no extra span')
}

t.test('HAProxy launches the agent; a reload under traffic loses nothing; soft-stop ends it', { skip }, async (t) => {
  const { receiver, fePort, agentLog, haproxy, agentPid, startedLines } = await setup(t)
  const urls: string[] = []
  const failures: string[] = []
  let running = true
  const client = async (c: number) => {
    for (let i = 0; running; i++) {
      const url = `/client-${c}/req-${i}`
      try {
        const res = await get(`http://127.0.0.1:${fePort}${url}`)
        if (res.status !== 200) failures.push(`${url}: ${res.status}`)
        urls.push(url)
      } catch (e) {
        failures.push(`${url}: ${(e as Error).message}`)
      }
    }
  }
  const clients = Promise.all([0, 1, 2, 3].map(client))
  // Traffic before the reload, and as much again after it.
  await eventually(() => urls.length >= 20, 10_000)
  process.kill(haproxy.pid, 'SIGUSR2') // master-worker reload
  t.ok(await eventually(() => /Reloading HAProxy/.test(haproxy.output()), 5000), 'HAProxy reloaded')
  const atReload = urls.length
  t.ok(await eventually(() => urls.length >= atReload + 40, 15_000), 'requests go on after the reload')
  running = false
  await clients
  t.same(failures, [], 'no request failed across the reload')
  t.ok(urls.length > 20, `${urls.length} requests sent`)
  await receiver.waitForSpans(urls.length * 9, 15_000)
  checkTraces(t, receiver.spans, urls)
  t.ok(alive(agentPid), 'the same agent process is still running')
  t.equal(startedLines().length, 1, 'never restarted')
  t.match(readFileSync(agentLog, 'utf8'), /SIGUSR1 from HAProxy/, 'it saw the SIGUSR1 HAProxy 2.6 sends on reload')
  t.notMatch(haproxy.output(), /Debugger listening/, "Node's inspector never opened")

  // Soft-stop: HAProxy finishes its work; the agent stops once no worker is left.
  receiver.clear()
  const res = await fetch(`http://127.0.0.1:${fePort}/last`)
  await res.text()
  process.kill(haproxy.pid, 'SIGUSR1')
  t.ok(await eventually(() => haproxy.child.exitCode !== null, 15_000), 'HAProxy exits after a soft-stop')
  t.ok(await eventually(() => !alive(agentPid), 5000), 'the agent has stopped')
  const log = readFileSync(agentLog, 'utf8')
  t.match(log, /HAProxy soft-stop: no HAProxy worker left/)
  t.match(log, /"msg":"stopped"/)
  t.equal(receiver.spans.length, 9, 'the last request was exported before the agent stopped')
})

t.test('a hard stop of HAProxy (SIGTERM) stops the agent and flushes its spans', { skip }, async (t) => {
  const { receiver, fePort, agentLog, haproxy, agentPid } = await setup(t)
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${fePort}/hard/${i}`)
    await res.text()
  }
  process.kill(haproxy.pid, 'SIGTERM')
  t.ok(await eventually(() => haproxy.child.exitCode !== null || haproxy.child.signalCode !== null, 15_000), 'HAProxy exits')
  t.ok(await eventually(() => !alive(agentPid), 10_000), 'the agent has stopped')
  await receiver.waitForSpans(27, 5000)
  checkTraces(t, receiver.spans, ['/hard/0', '/hard/1', '/hard/2'])
  t.match(readFileSync(agentLog, 'utf8'), /"reason":"SIGTERM"/)
})

t.test('the HAProxy master killed with SIGKILL: the orphaned agent stops by itself', { skip }, async (t) => {
  const { fePort, agentLog, haproxy, agentPid, receiver } = await setup(t)
  const res = await fetch(`http://127.0.0.1:${fePort}/before-kill`)
  await res.text()
  process.kill(haproxy.pid, 'SIGKILL')
  t.ok(await eventually(() => !alive(agentPid), 10_000), 'the agent noticed and stopped')
  t.match(readFileSync(agentLog, 'utf8'), /the HAProxy master that launched the agent is gone/)
  await receiver.waitForSpans(9, 5000)
  t.pass('its spans were flushed on the way out')
})
