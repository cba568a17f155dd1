// A fixed-bucket histogram cheap enough for the NOTIFY -> ACK path: one
// binary search over 18 bounds and two adds per observation, no allocation.
// Bucket bounds are in the unit the caller observes in (microseconds for ACK
// latency, milliseconds for export batches); /metrics renders them as
// Prometheus cumulative buckets.

export class Histogram {
  readonly bounds: readonly number[]
  /** counts[i]: observations <= bounds[i] and > bounds[i-1]; the last slot is +Inf. */
  readonly counts: number[]
  sum = 0
  count = 0

  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  observe(v: number): void {
    const b = this.bounds
    let lo = 0
    let hi = b.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (v <= b[mid]!) hi = mid
      else lo = mid + 1
    }
    this.counts[lo]!++
    this.sum += v
    this.count++
  }

  /** Cumulative counts per bound, then +Inf: the Prometheus `le` series. */
  cumulative(): number[] {
    const out: number[] = []
    let acc = 0
    for (const c of this.counts) out.push((acc += c))
    return out
  }

  /** An estimate of quantile q (0..1) from the buckets: the bound of the bucket that reaches it. */
  quantile(q: number): number {
    if (this.count === 0) return 0
    const target = q * this.count
    let acc = 0
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i]!
      if (acc >= target) return i < this.bounds.length ? this.bounds[i]! : Infinity
    }
    return Infinity
  }
}

/** NOTIFY -> ACK, microseconds: from a frame's arrival to its ACK being queued. */
export const ACK_LATENCY_US_BOUNDS = [
  5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
]

/** One export request, milliseconds. */
export const EXPORT_MS_BOUNDS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000]
