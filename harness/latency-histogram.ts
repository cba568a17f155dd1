// A log-linear latency histogram (the HdrHistogram layout, much simplified):
// values below 64 get one bucket each, and every power of two above is cut in
// 32 equal buckets, so a reported percentile is within ~3% of the true value.
// Recording is a few integer operations and one array increment, which is
// what a load generator needs when it records millions of samples a second;
// no sample is kept. (src/util/histogram.ts is the agent's own: fixed
// Prometheus buckets for /metrics, not quantiles.)

const SUB_BITS = 5
const SUB = 1 << SUB_BITS // buckets per power of two
const LINEAR = SUB * 2 // values 0..63 are exact
/** Values are clamped to 2^31 - 1 (about 36 minutes when the unit is the microsecond). */
const MAX_VALUE = 0x7fffffff
const BUCKETS = LINEAR + (31 - SUB_BITS) * SUB

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS)
  count = 0
  sum = 0
  max = 0

  /** Records one non-negative value (rounded down to an integer). */
  record(value: number): void {
    let v = value > 0 ? Math.floor(value) : 0
    if (v > MAX_VALUE) v = MAX_VALUE
    this.counts[bucketOf(v)]!++
    this.count++
    this.sum += v
    if (v > this.max) this.max = v
  }

  reset(): void {
    this.counts.fill(0)
    this.count = this.sum = this.max = 0
  }

  /** Adds another histogram's samples to this one (per-connection histograms into one). */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!
    this.count += other.count
    this.sum += other.sum
    if (other.max > this.max) this.max = other.max
  }

  /** The value below which `q` (0..1) of the samples fall: the middle of its bucket, never above the max. */
  quantile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(bucketMiddle(i), this.max)
    }
    return this.max
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count
  }
}

function bucketOf(v: number): number {
  if (v < LINEAR) return v
  const shift = 31 - Math.clz32(v) - SUB_BITS // v >> shift lands in [SUB, 2*SUB)
  return LINEAR + (shift - 1) * SUB + ((v >> shift) - SUB)
}

function bucketMiddle(i: number): number {
  if (i < LINEAR) return i
  const shift = Math.floor((i - LINEAR) / SUB) + 1
  const low = (SUB + ((i - LINEAR) % SUB)) * 2 ** shift
  return low + (2 ** shift - 1) / 2
}
