// Copies a counters object that crossed a thread (structured clone: plain
// objects, Maps and arrays, no prototypes) into the live object of the same
// shape on this side, in place: whoever holds the object (/metrics, the
// statistics line, the benchmarks) reads the other thread's latest values.

import { Histogram } from './histogram.js'

type Bag = Record<string, unknown>

export function copyStatsInto(target: object, snapshot: object): void {
  const t = target as Bag
  const s = snapshot as Bag
  for (const key of Object.keys(s)) {
    const from = s[key]
    const to = t[key]
    if (to instanceof Map) {
      to.clear()
      for (const [k, v] of from as Map<unknown, unknown>) to.set(k, v)
    } else if (to instanceof Histogram) {
      const h = from as { counts: number[]; sum: number; count: number }
      for (let i = 0; i < to.counts.length; i++) to.counts[i] = h.counts[i] ?? 0
      to.sum = h.sum
      to.count = h.count
    } else if (typeof to === 'object' && to !== null && typeof from === 'object' && from !== null) {
      copyStatsInto(to, from)
    } else if (typeof to === typeof from) {
      t[key] = from
    }
  }
}
