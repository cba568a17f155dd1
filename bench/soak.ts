// `npm run bench -- soak`: the real daemon (bench/tracing-agent-process.ts,
// exporting to the counting OTLP sink) under the spoa-opentracing 9-span flow
// at a steady rate for minutes, a share of the requests abandoned halfway
// (backend timeouts, aborted clients) so the reaper works too. Every
// `--sample` seconds it records the agent's RSS, heap, open trees and spans,
// exports and drops: after the warm-up, memory and open trees must stay flat.

import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { nineSpanFlow } from './flows/nine-span.js'
import { decodeFrame, encodeFrame, type Frame, FrameReader, type Message } from '../src/spop/index.js'
import { haproxyHello } from './spop-loadgen.js'
import { clockTicksPerSec, guardChildren, JsonLineChild } from './child.js'
import { bool, commandUsage, type FlagSpec, num, parseCommand } from './cli-options.js'
import type { TracingAgentUsage } from './tracing-agent-process.js'

const AGENT_SCRIPT = fileURLToPath(new URL('./tracing-agent-process.js', import.meta.url))
const SINK_SCRIPT = fileURLToPath(new URL('./otlp-sink.js', import.meta.url))

const SPEC: FlagSpec = {
  minutes: { kind: 'number', help: 'how long the load runs (default 10)' },
  rate: { kind: 'number', help: 'requests per second, 9 spans each (default 2000)' },
  connections: { kind: 'number', help: 'SPOP connections (default 4)' },
  abandon: { kind: 'number', help: 'percent of requests abandoned after 4 of 8 events, left to the reaper (default 1)' },
  sample: { kind: 'number', help: 'seconds between samples (default 10)' },
  warmup: { kind: 'number', help: 'minutes excluded from the flatness check (default 2)' },
  json: { kind: 'boolean', help: 'print one JSON line per sample and one summary line' },
}

/** One SPOP connection playing HAProxy: HELLO, then NOTIFY after NOTIFY, each awaited. */
class Peer {
  private readonly reader = new FrameReader(1 << 20)
  private waiting: ((f: Frame) => void) | null = null
  private readonly frames: Frame[] = []
  private sid = 1

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk) => this.reader.push(chunk, (b) => this.deliver(decodeFrame(b))))
  }

  static async open(port: number): Promise<Peer> {
    const s = connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject))
    const p = new Peer(s)
    // One engine, as one HAProxy process: every connection shares its trees.
    s.write(encodeFrame(haproxyHello(16380, 'soak-engine')))
    const hello = await p.next()
    if (hello.type !== 'agent-hello') throw new Error(`expected AGENT-HELLO, got ${hello.type}`)
    return p
  }

  private deliver(f: Frame): void {
    const w = this.waiting
    if (w !== null) {
      this.waiting = null
      w(f)
    } else this.frames.push(f)
  }

  next(): Promise<Frame> {
    const f = this.frames.shift()
    if (f !== undefined) return Promise.resolve(f)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000)
      this.waiting = (x) => {
        clearTimeout(timer)
        resolve(x)
      }
    })
  }

  async notify(messages: Message[]): Promise<void> {
    this.socket.write(encodeFrame({ type: 'notify', flags: 1, streamId: this.sid++, frameId: 1, messages }))
    const f = await this.next()
    if (f.type !== 'ack') throw new Error(`expected ACK, got ${f.type}`)
  }

  close(): void {
    this.socket.destroy()
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommand('soak', argv, SPEC, commandUsage('soak', SPEC), (v) => ({
    minutes: num(v, 'minutes', 10, 0.1),
    rate: num(v, 'rate', 2000, 1),
    connections: num(v, 'connections', 4, 1),
    abandon: num(v, 'abandon', 1, 0) / 100,
    sampleS: num(v, 'sample', 10, 1),
    warmupMin: num(v, 'warmup', 2, 0),
    json: bool(v, 'json'),
  }))
  if ('exit' in parsed) return parsed.exit
  const { minutes, rate, connections, abandon, sampleS, warmupMin, json } = parsed.value
  const unguard = guardChildren()
  const sink = await JsonLineChild.start({ name: 'the OTLP sink', script: SINK_SCRIPT })
  const agent = await JsonLineChild.start({
    name: 'the tracing agent',
    script: AGENT_SCRIPT,
    args: ['--host', '127.0.0.1', '--port', '0', '--endpoint', `http://127.0.0.1:${sink.port}/v1/traces`, '--clk-tck', String(clockTicksPerSec())],
    timeoutMs: 30_000,
  })
  const peers = await Promise.all(Array.from({ length: connections }, () => Peer.open(agent.port)))
  const started = Date.now()
  const end = started + minutes * 60_000
  let seq = 0
  let requests = 0
  let abandoned = 0
  const errors: string[] = []
  const drive = async (peer: Peer): Promise<void> => {
    const perPeer = rate / connections
    let sent = 0
    while (Date.now() < end && errors.length === 0) {
      const n = seq++
      const frames = nineSpanFlow({ uniqueId: `soak-${n}`, url: `/item/${n % 1000}` })
      const cut = Math.random() < abandon ? 4 : frames.length
      try {
        for (let i = 0; i < cut; i++) await peer.notify(frames[i]!)
      } catch (e) {
        errors.push((e as Error).message)
        break
      }
      if (cut < frames.length) abandoned++
      requests++
      sent++
      const wait = started + (sent / perPeer) * 1000 - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
  }
  const samples: Array<{ t: number; rssMb: number; heapMb: number; treesOpen: number; openSpans: number; exported: number; dropped: number; reaped: number; requests: number }> = []
  const sampler = setInterval(() => {
    void agent.request<TracingAgentUsage>('usage', 'usage').then((u) => {
      const s = {
        t: Math.round((Date.now() - started) / 1000),
        rssMb: Math.round(u.rssBytes / 1048576),
        heapMb: Math.round(u.heapUsedBytes / 1048576),
        treesOpen: u.tracing.treesOpen,
        openSpans: u.tracing.openSpans,
        exported: u.export.spansExported,
        dropped: Object.values(u.export.spansDropped).reduce((a, b) => a + b, 0) + Object.values(u.tracing.spansDropped).reduce((a, b) => a + b, 0),
        reaped: u.tracing.treesReaped,
        requests,
      }
      samples.push(s)
      console.log(json ? JSON.stringify({ type: 'sample', ...s }) : `t=${s.t}s rss=${s.rssMb}MB heap=${s.heapMb}MB trees_open=${s.treesOpen} spans_open=${s.openSpans} exported=${s.exported} dropped=${s.dropped} reaped=${s.reaped} requests=${s.requests}`)
    }, (e: unknown) => errors.push(`usage sample: ${(e as Error).message}`))
  }, sampleS * 1000)
  await Promise.all(peers.map(drive))
  clearInterval(sampler)
  for (const p of peers) p.close()
  await agent.request('close', 'closed', 30_000).catch(() => {})
  await Promise.all([agent.stop(10_000), sink.stop(5000)])
  unguard()

  const after = samples.filter((s) => s.t >= warmupMin * 60)
  const half = Math.floor(after.length / 2)
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  const firstRss = mean(after.slice(0, half).map((s) => s.rssMb))
  const lastRss = mean(after.slice(half).map((s) => s.rssMb))
  const treesFirst = Math.max(0, ...after.slice(0, half).map((s) => s.treesOpen))
  const treesLast = Math.max(0, ...after.slice(half).map((s) => s.treesOpen))
  // Flat: the second half of the post-warm-up samples is no more than 10% above the first
  // (RSS in mean, open trees in max), so a slow leak over minutes shows up as NOT flat.
  const flat = half > 0 && lastRss <= firstRss * 1.1 && treesLast <= treesFirst * 1.1 + 10
  const summary = {
    type: 'summary',
    minutes,
    rate,
    requests,
    abandoned,
    errors: errors.slice(0, 5),
    rssFirstHalfMb: Math.round(firstRss),
    rssSecondHalfMb: Math.round(lastRss),
    rssGrowthPct: Number((((lastRss - firstRss) / Math.max(1, firstRss)) * 100).toFixed(1)),
    rssMaxMb: Math.max(...samples.map((s) => s.rssMb)),
    treesOpenMax: Math.max(...after.map((s) => s.treesOpen)),
    treesOpenLast: samples.at(-1)?.treesOpen ?? 0,
    reaped: samples.at(-1)?.reaped ?? 0,
    dropped: samples.at(-1)?.dropped ?? 0,
    flat,
  }
  console.log(json ? JSON.stringify(summary) : `\nsummary: ${JSON.stringify(summary)}`)
  if (!json) {
    console.log(
      half === 0
        ? 'flatness: not judged (no samples after the warm-up; run longer or lower --warmup)'
        : `flatness after ${warmupMin} min of warm-up: ${flat ? 'flat' : 'NOT flat'} (RSS ${Math.round(firstRss)} -> ${Math.round(lastRss)} MB, open trees at most ${treesFirst} -> ${treesLast})`,
    )
  }
  return errors.length > 0 || (half > 0 && !flat) ? 1 : 0
}
