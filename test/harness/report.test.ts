// The benchmarks' summaries: medians, one record from several runs' records.

import t from 'tap'
import { median, medianRecord, spread, table } from '../../harness/report.js'

t.test('median and spread', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.ok(Number.isNaN(median([])))
  t.equal(spread([90, 100, 110]), 20)
})

t.test('medianRecord: every numeric field, with sums, maxima and the base run where asked', async (t) => {
  const runs = [
    { name: 'a', rps: 10, lat: { p50: 5, p99: 50 }, errors: { socket: 1, status: 0 }, peak: 100, notes: ['a'], raw: { x: 1 } },
    { name: 'b', rps: 30, lat: { p50: 7, p99: 70 }, errors: { socket: 2, status: 1 }, peak: 300, notes: ['b'], raw: { x: 2 } },
    { name: 'c', rps: 20, lat: { p50: 6, p99: 90 }, errors: { socket: 0, status: 0 }, peak: 200, notes: ['c'], raw: { x: 3 } },
  ]
  t.strictSame(medianRecord(runs, { errors: 'sum', peak: 'max', raw: 'base' }), {
    name: 'a',
    rps: 20,
    lat: { p50: 6, p99: 70 },
    errors: { socket: 3, status: 1 },
    peak: 300,
    notes: ['a'],
    raw: { x: 1 },
  })
  t.equal(medianRecord(runs, {}, runs[1]).name, 'b', 'what is not a number comes from the base run')
})

t.test('table: headings and right-aligned cells', async (t) => {
  const lines = table([['req/s', 6, (r: { v: number }) => String(r.v)]], [['run 1', { v: 42 }]])
  t.strictSame(lines, ['run     req/s', 'run 1      42'])
})
