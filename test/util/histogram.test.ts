import t from 'tap'
import { Histogram } from '../../src/util/histogram.js'

t.test('observations land in the right bucket; cumulative counts and quantiles', async (t) => {
  const h = new Histogram([1, 10, 100])
  for (const v of [0, 1, 1.5, 10, 11, 100, 1000, 5]) h.observe(v)
  t.same(h.counts, [2, 3, 2, 1], '<=1, <=10, <=100, +Inf')
  t.same(h.cumulative(), [2, 5, 7, 8])
  t.equal(h.count, 8)
  t.equal(h.sum, 0 + 1 + 1.5 + 10 + 11 + 100 + 1000 + 5)
  t.equal(h.quantile(0.5), 10)
  t.equal(h.quantile(0.99), Infinity)
  t.equal(new Histogram([1]).quantile(0.5), 0, 'empty')
})
