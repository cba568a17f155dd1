#!/usr/bin/env node
// `npm run demo`: the whole chain on this machine, no collector needed.
// Starts a demo backend, spoa-tracer (file exporter) and HAProxy with the
// shipped 9-span SPOE configuration, sends a few requests, stops the agent
// (which flushes), and prints the span tree of a request and where the
// spans were written. Bounded: it ends by itself. --serve keeps it running
// until Ctrl-C so you can send your own requests.

// HAProxy, the processes and the waits come from the harness the tests use
// (harness/, built into dist/ by `npm run demo`).

import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { join, resolve } from 'node:path'
import { findHaproxy, startHaproxy } from '../dist/harness/haproxy.js'
import { waitServerUp } from '../dist/harness/haproxy-stats.js'
import { spawnTracked } from '../dist/harness/process.js'
import { eventually } from '../dist/harness/wait.js'

const root = resolve(import.meta.dirname, '..')
const serve = process.argv.includes('--serve')
const outDir = join(root, 'demo-output')
const spansFile = join(outDir, 'spans.jsonl')
const children = []

function start(name, cmd, args) {
  const proc = spawnTracked({ name, command: cmd, args, cwd: root })
  children.push(proc)
  return proc
}

/** The port the agent listens on, from its start line (it was given port 0). */
async function agentPort(agent) {
  const started = () =>
    agent
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"spoa-tracer started"'))
      .map((l) => JSON.parse(l))[0]
  if (!(await eventually(() => started() !== undefined || agent.hasExited(), 15000))) throw new Error('spoa-tracer did not start within 15 s')
  if (started() === undefined) throw new Error('spoa-tracer exited at start')
  return started().listen.port
}

function printTree(spans) {
  const byTrace = new Map()
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s])
  const [traceId, trace] = [...byTrace.entries()].find(([, t]) => t.length === 9) ?? [...byTrace.entries()][0]
  const byId = new Map(trace.map((s) => [s.spanId, s]))
  const children = new Map()
  for (const s of trace) {
    const p = byId.has(s.parentSpanId) ? s.parentSpanId : ''
    children.set(p, [...(children.get(p) ?? []), s])
  }
  const t0 = Math.min(...trace.map((s) => Number(BigInt(s.startTimeUnixNano) / 1000n)))
  const kinds = ['', 'internal', 'server', 'client', 'producer', 'consumer']
  console.log(`\ntrace ${traceId} (${trace.length} spans):\n`)
  const walk = (id, depth) => {
    const list = (children.get(id) ?? []).sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1))
    for (const s of list) {
      const start = Number(BigInt(s.startTimeUnixNano) / 1000n) - t0
      const dur = Number((BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1000n)
      const link = s.links?.length ? ' (follows from)' : ''
      const attrs = (s.attributes ?? [])
        .filter((a) => a.key.startsWith('http.'))
        .map((a) => `${a.key}=${Object.values(a.value)[0]}`)
        .join(' ')
      console.log(
        `  ${'  '.repeat(depth)}${s.name}${link}  [${kinds[s.kind] ?? s.kind}] +${(start / 1000).toFixed(3)} ms, ${(dur / 1000).toFixed(3)} ms${attrs ? `  ${attrs}` : ''}`,
      )
      walk(s.spanId, depth + 1)
    }
  }
  walk('', 0)
}

async function main() {
  const haproxy = findHaproxy()
  if (!haproxy) {
    console.error('The demo needs HAProxy, which is not installed. On Debian or Ubuntu:\n\n  sudo apt-get update && sudo apt-get install -y haproxy\n\nthen run `npm run demo` again.')
    process.exit(1)
  }
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })

  // The demo backend: answers 200, or the status in ?status=NNN.
  const backend = createServer((req, res) => {
    const status = Number(/[?&]status=(\d{3})/.exec(req.url)?.[1] ?? 200)
    res.writeHead(status, { 'content-type': 'text/plain' })
    res.end(`demo backend: ${req.method} ${req.url} -> ${status}\n`)
  })
  await new Promise((r) => backend.listen(0, '127.0.0.1', r))
  const backendPort = backend.address().port

  const agent = start('spoa-tracer', process.execPath, [
    'bin/spoa-tracer',
    '--port', '0',
    '--exporter', 'file',
    '--output-file', spansFile,
    '--batch-delay', '100ms',
    '--log-format', 'json',
    '-i', '0',
  ])
  const port = await agentPort(agent)
  const hap = await startHaproxy({
    name: 'haproxy',
    bin: haproxy,
    cwd: root,
    config: 'haproxy/haproxy.cfg',
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: { BACKEND_ADDR: `127.0.0.1:${backendPort}`, AGENT_ADDR: `127.0.0.1:${port}`, SPOE_CONF: 'haproxy/spoe.cfg' },
  })
  children.push(hap)
  // The SPOE events wait for HAProxy's health check to see the agent UP.
  await waitServerUp(hap.stats, 'spoa-tracer', 'agent')
  const fePort = hap.port
  console.log(`demo: backend on 127.0.0.1:${backendPort}, spoa-tracer on 127.0.0.1:${port}, HAProxy on http://127.0.0.1:${fePort}/`)

  const paths = ['/', '/index.html', '/api/items?page=2', '/checkout', '/missing?status=404']
  for (const p of paths) {
    const res = await fetch(`http://127.0.0.1:${fePort}${p}`)
    await res.text()
    console.log(`demo: GET ${p} -> ${res.status}`)
  }

  if (serve) {
    console.log(`\ndemo: running; try  curl http://127.0.0.1:${fePort}/hello  (spans go to ${spansFile}); Ctrl-C stops.`)
    await new Promise((r) => process.once('SIGINT', r))
  }
  await hap.stop()
  await agent.stop(12000) // SIGTERM: open trees end, the queue is flushed to the file
  backend.close()
  if (agent.child.exitCode !== 0) throw new Error(`spoa-tracer exited with ${agent.child.exitCode ?? agent.child.signalCode}:\n${agent.tail()}`)
  if (!existsSync(spansFile)) throw new Error(`no spans were written to ${spansFile}; agent output:\n${agent.output()}`)
  const spans = []
  for (const line of readFileSync(spansFile, 'utf8').split('\n').filter(Boolean)) {
    for (const rs of JSON.parse(line).resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []))
  }
  const traces = new Set(spans.map((s) => s.traceId)).size
  printTree(spans)
  console.log(`\ndemo: ${spans.length} spans in ${traces} traces (${paths.length} requests) written to ${spansFile}`)
  console.log('demo: OTLP/JSON, one ExportTraceServiceRequest per line. Point --exporter otlp --endpoint at a collector for real use.')
  if (traces !== paths.length || spans.length !== paths.length * 9) {
    throw new Error(`expected ${paths.length * 9} spans in ${paths.length} traces`)
  }
}

main()
  .then(() => process.exit(0))
  .catch(async (err) => {
    console.error(`demo failed: ${err.message}`)
    for (const p of children) if (p.output()) console.error(`--- ${p.name} output ---\n${p.tail()}`)
    for (const p of children.reverse()) await p.stop(3000)
    process.exit(1)
  })
