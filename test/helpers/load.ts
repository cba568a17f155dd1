// Steady SPOP load for fault tests: a few FakeHaproxy connections replaying
// the 9-span flow at a target rate, each NOTIFY awaited, ACK latency recorded.

import { nineSpanFlow } from '../../bench/flows/nine-span.js'
import type { ListenAddress } from '../../src/agent/index.js'
import { FakeHaproxy } from './fake-haproxy.js'

export interface LoadResult {
  requests: number
  acks: number
  errors: string[]
  /** ACK round trips, milliseconds. */
  latencies: number[]
}

export class SteadyLoad {
  private running = true
  private readonly done: Promise<void>
  readonly result: LoadResult = { requests: 0, acks: 0, errors: [], latencies: [] }
  private seq = 0

  /** `rate`: requests per second over all connections. */
  constructor(addr: ListenAddress, rate: number, connections = 4, private readonly prefix = 'load') {
    const perConn = rate / connections
    this.done = Promise.all(Array.from({ length: connections }, () => this.client(addr, perConn))).then(() => {})
  }

  private async client(addr: ListenAddress, rate: number): Promise<void> {
    const h = await FakeHaproxy.connect(addr)
    await h.hello()
    let sid = 1
    const started = Date.now()
    let sent = 0
    try {
      while (this.running) {
        const uniqueId = `${this.prefix}-${this.seq++}`
        for (const messages of nineSpanFlow({ uniqueId })) {
          const t0 = performance.now()
          h.notify(sid++, 1, messages)
          const f = await h.next(5000)
          if (f.type !== 'ack') this.result.errors.push(`got ${f.type}`)
          else this.result.acks++
          this.result.latencies.push(performance.now() - t0)
        }
        this.result.requests++
        sent++
        const due = started + (sent / rate) * 1000
        const wait = due - Date.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      }
    } catch (e) {
      this.result.errors.push((e as Error).message)
    } finally {
      h.destroy()
    }
  }

  async stop(): Promise<LoadResult> {
    this.running = false
    await this.done
    return this.result
  }
}

export function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}
