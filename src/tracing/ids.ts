// Trace and span ids: random, from a pooled CSPRNG buffer (one randomBytes
// call per 512 span ids instead of one per id), as lowercase hex.

import { randomFillSync } from 'node:crypto'

const POOL = 4096

export class IdGenerator {
  private readonly pool = Buffer.allocUnsafe(POOL)
  private pos = POOL

  private take(n: number): string {
    if (this.pos + n > POOL) {
      randomFillSync(this.pool)
      this.pos = 0
    }
    const start = this.pos
    this.pos += n
    // All-zero ids are invalid in W3C trace context; at 2^-64 this is a formality.
    for (let i = start; i < this.pos; i++) if (this.pool[i] !== 0) return this.pool.toString('hex', start, this.pos)
    return this.take(n)
  }

  traceId(): string {
    return this.take(16)
  }

  spanId(): string {
    return this.take(8)
  }
}
