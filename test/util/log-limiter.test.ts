// LogLimiter: one line per key per interval, and the count of what it held
// back said by the next line that gets through. On a manual clock.

import t from 'tap'
import { LogLimiter } from '../../src/util/log-limiter.js'

function limiter(intervalMs?: number) {
  let now = 1_000_000
  const l = new LogLimiter(intervalMs, () => now)
  return { l, advance: (ms: number) => void (now += ms) }
}

t.test('the first line of a key passes; the next ones within the interval are dropped', async (t) => {
  const { l, advance } = limiter(1000)
  t.equal(l.allow('bad-frame'), 0, 'first: allowed, nothing suppressed')
  t.equal(l.allow('bad-frame'), -1, 'at once: dropped')
  advance(999)
  t.equal(l.allow('bad-frame'), -1, 'just inside the interval: dropped')
  advance(1)
  t.equal(l.allow('bad-frame'), 2, 'one interval after the last allowed line: allowed, says 2 were suppressed')
  advance(1000)
  t.equal(l.allow('bad-frame'), 0, 'the count starts again from the line allowed')
})

t.test('the interval runs from the last line allowed, not from the last attempt', async (t) => {
  const { l, advance } = limiter(1000)
  l.allow('k')
  for (let i = 0; i < 9; i++) {
    advance(100)
    t.equal(l.allow('k'), -1)
  }
  advance(100)
  t.equal(l.allow('k'), 9, 'a steady stream still gets one line per interval')
})

t.test('keys are independent', async (t) => {
  const { l, advance } = limiter(1000)
  t.equal(l.allow('a'), 0)
  t.equal(l.allow('b'), 0, 'another key is not held back by the first')
  t.equal(l.allow('a'), -1)
  advance(1000)
  t.equal(l.allow('b'), 0, 'nothing suppressed for b')
  t.equal(l.allow('a'), 1)
})

t.test('defaults: 10 s on the system clock', async (t) => {
  const l = new LogLimiter()
  t.equal(l.allow('x'), 0)
  t.equal(l.allow('x'), -1, 'the next line within 10 s is dropped')
})
