// Quantile estimates over the last interval of a cumulative fixed-bucket
// Histogram: the statistics line wants "p99 of the last 5 s", which the
// since-start histogram cannot give once it holds millions of observations.

import type { Histogram } from '../util/histogram.js'

export class HistogramWindow {
  private readonly h: Histogram
  private prev: number[]

  constructor(h: Histogram) {
    this.h = h
    this.prev = h.counts.slice()
  }

  /**
   * For each quantile q (0..1), the upper bound of the bucket that reaches it
   * among the observations since the last call (a conservative estimate); 0
   * when there were none. The overflow bucket reports the largest bound.
   */
  next(qs: readonly number[]): number[] {
    const cur = this.h.counts.slice()
    const delta = cur.map((c, i) => c - (this.prev[i] ?? 0))
    this.prev = cur
    const total = delta.reduce((a, b) => a + b, 0)
    const bounds = this.h.bounds
    return qs.map((q) => {
      if (total <= 0) return 0
      const target = q * total
      let acc = 0
      for (let i = 0; i < delta.length; i++) {
        acc += delta[i]!
        if (acc >= target) return bounds[Math.min(i, bounds.length - 1)]!
      }
      return bounds[bounds.length - 1]!
    })
  }
}
