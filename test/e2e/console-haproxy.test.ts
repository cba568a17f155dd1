// End to end: `spoa-tracer --exporter console` as a process behind the real
// HAProxy (the 9-span spoe.cfg flow). stdout carries only trace trees, each
// trace once and whole (9 spans), although batches are smaller than a tree
// and two export workers write at once; the logs (a statistics line every
// second, the start and stop lines) go to stderr, never into a tree.

import { spawn } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { startHaproxy } from '../../harness/haproxy.js'
import { freePort, waitForPort } from '../../harness/ports.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { startOrigin } from '../helpers/origin.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
const BIN = join(process.cwd(), 'bin', 'spoa-tracer')

t.test('console exporter: one readable tree per trace on stdout, logs on stderr', { skip: bin === null }, async (t) => {
  const agentPort = await freePort()
  const args = ['-p', String(agentPort), '--exporter', 'console', '-n', '2', '--batch-size', '4', '--batch-delay', '20ms', '-i', '1s']
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await waitForPort(agentPort, 15_000)
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const haproxy = await startHaproxy({
    bin: bin!,
    config: 'haproxy/haproxy.cfg',
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_ADDR: `127.0.0.1:${agentPort}`,
      SPOE_CONF: 'haproxy/spoe.cfg',
      SPOA_TIMEOUT_PROCESSING: '2s',
    },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())
  // HAProxy's first health check may have run before the agent listened: wait for a traced request.
  const traced = () => (out.match(/^trace /gm) ?? []).length
  t.ok(await eventually(() => (void get(`http://127.0.0.1:${fePort}/warmup`).catch(() => {}), traced() > 0), 10_000, 300), 'a first trace printed')
  // Requests in parallel while the statistics line is logged every second.
  const N = 30
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: N / 3 }, (_, i) => get(`http://127.0.0.1:${fePort}/r/${round}/${i}?status=${i % 5 === 0 ? 503 : 200}`)))
  }
  t.ok(await eventually(() => /\/r\/2\/9/.test(out), 10_000), 'the last request printed')
  t.ok(await eventually(() => /"msg":"statistics"/.test(err), 5000), 'a statistics line was logged meanwhile')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'stopped cleanly')

  // stdout: nothing but trace blocks.
  const lines = out.trimEnd().split('\n')
  const stray = lines.filter((l) => !l.startsWith('trace ') && !l.startsWith('  '))
  t.same(stray, [], 'every stdout line belongs to a trace block')
  t.notOk(/"level"|"msg"/.test(out), 'no log line on stdout')
  const blocks = out.split(/^(?=trace )/m).filter((b) => b !== '')
  const ids = blocks.map((b) => /^trace ([0-9a-f]{32}) /.exec(b)![1])
  t.equal(new Set(ids).size, ids.length, 'each trace printed once: no tree split across batches or writes')
  const requests = blocks.filter((b) => /http\.url="\/r\//.test(b))
  t.equal(requests.length, N, 'one block per request')
  const sizes = requests.map((b) => b.split('\n').filter((l) => /^ {2,}\S/.test(l) && !/^ +\* /.test(l)).length)
  t.same([...new Set(sizes)], [9], '9 spans in every block')
  const sample = requests.find((b) => /status=503|http\.status_code=503/.test(b)) ?? requests[0]!
  t.match(sample, /^trace [0-9a-f]{32}  \S+Z  9 spans  [\d.]+ ms  service haproxy\n  HAProxy session  SERVER  \+0\.000 ms/, 'the root first, at +0')
  t.match(sample, /\n {4}Client session  SERVER/, 'children indented under their parent')
  t.comment(`a trace as printed:\n${sample}`)

  // stderr: the logs, JSON lines (stderr is not a terminal here).
  const logLines = err.trimEnd().split('\n').filter((l) => l !== '')
  t.ok(logLines.length >= 3, `${logLines.length} log lines on stderr`)
  t.ok(logLines.every((l) => l.startsWith('{')), 'all JSON')
  t.ok(logLines.some((l) => /"msg":"stopped"/.test(l)), 'the stop line')
  t.ok(logLines.some((l) => /"msg":"statistics"/.test(l)), 'the statistics lines')
})
