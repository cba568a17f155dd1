// Steady SPOP load at a target rate, for fault tests and the soak benchmark:
// a few FakeHaproxy connections (one engine, as one HAProxy process) replaying
// the 9-span flow, each NOTIFY awaited, ACK latency recorded in a histogram.
// A share of the requests can be abandoned halfway (a backend timeout, an
// aborted client) to leave work to the agent's reaper.

import type { ListenAddress } from '../src/agent/index.js'
import { tv } from '../src/spop/index.js'
import { nineSpanFlow } from './flows/nine-span.js'
import { LatencyHistogram } from './latency-histogram.js'
import { FakeHaproxy } from './spop-client.js'
import { sleep } from './wait.js'

export interface SteadyLoadOptions {
  /** Requests per second over all connections. */
  rate: number
  connections?: number
  /** Unique-ids are `<prefix>-<n>` (the spans' baggage.haproxy_id tells the phases of a test apart). */
  prefix?: string
  /** Share of requests (0..1) abandoned after 4 of their 8 NOTIFY frames. */
  abandon?: number
  /** The HELLO's engine-id, shared by every connection. */
  engineId?: string
  /** Bytes of a tag value added to each request's first message (a larger message: a long header logged). */
  padBytes?: number
}

export interface LoadResult {
  /** Requests played (whole or abandoned). */
  requests: number
  abandoned: number
  /** NOTIFY frames sent, and ACKs received. */
  notifies: number
  acks: number
  errors: string[]
}

export class SteadyLoad {
  private running = true
  /** Resolves when every connection has ended: stopped, or failed (see result.errors). */
  readonly stopped: Promise<void>
  readonly result: LoadResult = { requests: 0, abandoned: 0, notifies: 0, acks: 0, errors: [] }
  /** ACK latency, µs; replace it to measure a phase apart. */
  latency = new LatencyHistogram()
  private seq = 0
  private readonly prefix: string
  private readonly abandon: number
  private readonly pad: string

  constructor(addr: ListenAddress, o: SteadyLoadOptions) {
    const connections = o.connections ?? 4
    this.prefix = o.prefix ?? 'load'
    this.abandon = o.abandon ?? 0
    this.pad = 'x'.repeat(o.padBytes ?? 0)
    const perConn = o.rate / connections
    this.stopped = Promise.all(Array.from({ length: connections }, () => this.client(addr, perConn, o.engineId))).then(() => {})
  }

  private async client(addr: ListenAddress, rate: number, engineId: string | undefined): Promise<void> {
    let h: FakeHaproxy | null = null
    try {
      h = await FakeHaproxy.connect(addr)
      const hello = await h.hello(engineId !== undefined ? { engineId } : {})
      if (hello.type !== 'agent-hello') throw new Error(`expected AGENT-HELLO, got ${hello.type}`)
      let sid = 1
      const started = Date.now()
      let sent = 0
      while (this.running) {
        const n = this.seq++
        const frames = nineSpanFlow({ uniqueId: `${this.prefix}-${n}`, url: `/item/${n % 1000}` })
        if (this.pad !== '') frames[0]![0]!.args.push({ name: 'tag', ...tv.string('bench.pad') }, { name: '', ...tv.string(this.pad) })
        const cut = this.abandon > 0 && Math.random() < this.abandon ? 4 : frames.length
        for (let i = 0; i < cut; i++) {
          const t0 = performance.now()
          h.notify(sid++, 1, frames[i]!)
          this.result.notifies++
          const f = await h.next(5000)
          if (f.type !== 'ack') throw new Error(`expected ACK, got ${f.type}`)
          this.result.acks++
          this.latency.record((performance.now() - t0) * 1000)
        }
        if (cut < frames.length) this.result.abandoned++
        this.result.requests++
        sent++
        const wait = started + (sent / rate) * 1000 - Date.now()
        if (wait > 0) await sleep(wait)
      }
    } catch (e) {
      this.result.errors.push((e as Error).message)
    } finally {
      h?.destroy()
    }
  }

  /** Resolves once every connection has stopped (after the NOTIFY it is waiting for). */
  async stop(): Promise<LoadResult> {
    this.running = false
    await this.stopped
    return this.result
  }
}
