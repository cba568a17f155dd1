import t from 'tap'
import { ratioSample, Sampler } from '../../src/tracing/sampler.js'

const id = (n: number) => n.toString(16).padStart(32, '0')
const parent = (sampled: boolean, debug = false) => ({ sampled, debug })

t.test('always and parent-based samplers', async (t) => {
  const on = new Sampler({ name: 'always_on', ratio: 1, rateLimit: 0 })
  const off = new Sampler({ name: 'always_off', ratio: 1, rateLimit: 0 })
  const pbOn = new Sampler({ name: 'parentbased_always_on', ratio: 1, rateLimit: 0 })
  const pbOff = new Sampler({ name: 'parentbased_always_off', ratio: 1, rateLimit: 0 })
  t.equal(on.shouldSample(id(1), parent(false), 0), true, 'always_on ignores the parent')
  t.equal(off.shouldSample(id(1), parent(true), 0), false)
  t.equal(pbOn.shouldSample(id(1), null, 0), true, 'root: always on')
  t.equal(pbOn.shouldSample(id(1), parent(false), 0), false, 'the parent decides')
  t.equal(pbOff.shouldSample(id(1), null, 0), false)
  t.equal(pbOff.shouldSample(id(1), parent(true), 0), true)
})

t.test('trace-id ratio: deterministic, close to the ratio', async (t) => {
  let n = 0
  const N = 20_000
  for (let i = 0; i < N; i++) {
    const tid = `${i.toString(16).padStart(8, '0')}${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0')}${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0')}`
    if (ratioSample(tid, 0.1)) n++
  }
  t.ok(Math.abs(n / N - 0.1) < 0.015, `${n / N} ~ 0.1`)
  t.equal(ratioSample(id(5), 0.1), ratioSample(id(5), 0.1), 'same id, same answer')
  t.equal(ratioSample('f'.repeat(32), 0.999), false)
  t.equal(ratioSample('0'.repeat(31) + '1', 0.001), true)
  const pbRatio = new Sampler({ name: 'parentbased_traceidratio', ratio: 0, rateLimit: 0 })
  t.equal(pbRatio.shouldSample(id(0), parent(true), 0), true, 'a sampled parent wins over the ratio')
})

t.test('rate limit: at most N new traces per second, refilled over time', async (t) => {
  const s = new Sampler({ name: 'always_on', ratio: 1, rateLimit: 10 })
  let n = 0
  for (let i = 0; i < 100; i++) if (s.shouldSample(id(i), null, 1_000_000)) n++
  t.equal(n, 10, 'a burst is capped at the limit')
  t.equal(s.shouldSample(id(0), null, 1_050_000), false, '50 ms later: half a token')
  t.equal(s.shouldSample(id(0), null, 1_150_000), true, '150 ms later: one more')
})

t.test('B3 debug: sampled under a parent-based sampler, whatever the ratio or the rate limit', async (t) => {
  const s = new Sampler({ name: 'parentbased_traceidratio', ratio: 0, rateLimit: 1 })
  t.equal(s.shouldSample(id(1), null, 1_000_000), false, 'ratio 0')
  t.equal(s.shouldSample(id(1), parent(true), 1_000_000), true, 'sampled parent: the one token')
  t.equal(s.shouldSample(id(2), parent(true), 1_000_000), false, 'rate limit reached')
  t.equal(s.shouldSample(id(3), parent(true, true), 1_000_000), true, 'debug: not rate-limited')
  t.equal(s.shouldSample(id(4), parent(false), 1_000_000), false, 'deny')
  t.equal(new Sampler({ name: 'always_off', ratio: 1, rateLimit: 0 }).shouldSample(id(1), parent(true, true), 0), false, 'a sampler that is not parent-based ignores the upstream')
})

t.test('a decision made again keeps its rate-limit token', async (t) => {
  const s = new Sampler({ name: 'parentbased_always_on', ratio: 1, rateLimit: 1 })
  t.equal(s.shouldSample(id(1), null, 1_000_000), true, 'takes the token')
  t.equal(s.shouldSample(id(1), parent(true), 1_000_000, true), true, 'the same trace, again: no second token needed')
  t.equal(s.shouldSample(id(2), null, 1_000_000), false, 'the bucket is empty')
  t.equal(s.lateContextMatters, true)
  t.equal(new Sampler({ name: 'always_on', ratio: 1, rateLimit: 0 }).lateContextMatters, false)
  t.equal(new Sampler({ name: 'traceidratio', ratio: 0.5, rateLimit: 0 }).lateContextMatters, true, 'the ratio depends on the trace id')
})
