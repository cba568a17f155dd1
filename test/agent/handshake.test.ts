import t from 'tap'
import { negotiate, parseCapabilities } from '../../src/agent/index.js'
import { type NamedValue, SpopError, tv } from '../../src/spop/index.js'

const hello = (over: Record<string, NamedValue | null> = {}): NamedValue[] => {
  const base: Record<string, NamedValue | null> = {
    'supported-versions': { name: 'supported-versions', ...tv.string('2.0') },
    'max-frame-size': { name: 'max-frame-size', ...tv.uint32(16380) },
    capabilities: { name: 'capabilities', ...tv.string('pipelining,async') },
    'engine-id': { name: 'engine-id', ...tv.string('e1') },
    ...over,
  }
  return Object.values(base).filter((v): v is NamedValue => v !== null)
}
const limits = { maxFrameSize: 16384, capabilities: ['pipelining'] as const }

t.test('2.6 offer: pipelining,async -> what the agent is configured for', async (t) => {
  const n = negotiate(hello(), limits)
  t.same(n.capabilities, ['pipelining'])
  t.equal(n.maxFrameSize, 16380, "HAProxy's value when ours is larger")
  t.equal(n.engineId, 'e1')
  t.equal(n.healthcheck, false)
  t.equal(n.version, '2.0')
  t.same(negotiate(hello(), { ...limits, capabilities: ['pipelining', 'async'] }).capabilities, ['pipelining', 'async'])
})

t.test('symmetrical capabilities: only those both sides list; parsing of the offer', async (t) => {
  const caps = (s: string | null) =>
    negotiate(hello({ capabilities: s === null ? null : { name: 'capabilities', ...tv.string(s) } }), {
      ...limits,
      capabilities: ['pipelining', 'async'],
    }).capabilities
  t.same(caps('pipelining'), ['pipelining'], '3.x offer')
  t.same(caps(''), [])
  t.same(caps(null), [], 'missing key = nothing offered')
  t.same(caps(' async , pipelining ,frobnicate'), ['pipelining', 'async'], 'spaces ignored, unknown tokens ignored')
  t.same(caps('pipeliningX'), [], 'a token counts only whole')
  t.same(parseCapabilities('a, b,,c '), ['a', 'b', 'c'])
})

t.test('fragmentation is asymmetrical (SPOE.txt 3.2.1): announced whenever configured', async (t) => {
  const caps = (offer: string | null, configured: Array<'pipelining' | 'async' | 'fragmentation'>) =>
    negotiate(hello({ capabilities: offer === null ? null : { name: 'capabilities', ...tv.string(offer) } }), {
      ...limits,
      capabilities: configured,
    }).capabilities
  // HAProxy 2.6 offers "pipelining,async" and never fragmentation: it cannot
  // receive fragments, but it fragments NOTIFYs for an agent that announced it.
  t.same(caps('pipelining,async', ['pipelining', 'fragmentation']), ['pipelining', 'fragmentation'], '2.6 offer')
  t.same(caps('pipelining', ['pipelining', 'async', 'fragmentation']), ['pipelining', 'fragmentation'], '3.x offer (ignored there)')
  t.same(caps('', ['fragmentation']), ['fragmentation'], 'nothing offered')
  t.same(caps(null, ['fragmentation']), ['fragmentation'], 'no capabilities key')
  t.same(caps('pipelining,async,fragmentation', ['pipelining']), ['pipelining'], 'not configured: never announced')
})

t.test('max-frame-size: configured lower wins; any integer type; range checked', async (t) => {
  t.equal(negotiate(hello(), { ...limits, maxFrameSize: 1024 }).maxFrameSize, 1024)
  t.equal(negotiate(hello({ 'max-frame-size': { name: 'max-frame-size', ...tv.int64(4096) } }), limits).maxFrameSize, 4096)
  t.throws(() => negotiate(hello({ 'max-frame-size': null }), limits), { name: 'SpopError', status: 6 })
  t.throws(() => negotiate(hello({ 'max-frame-size': { name: 'max-frame-size', ...tv.string('16380') } }), limits), {
    name: 'SpopError',
    status: 6,
  })
  t.throws(() => negotiate(hello({ 'max-frame-size': { name: 'max-frame-size', ...tv.uint32(255) } }), limits), {
    name: 'SpopError',
    status: 9,
  })
})

t.test('versions: 2.x accepted, others refused with 8, missing with 5', async (t) => {
  const v = (s: string) => negotiate(hello({ 'supported-versions': { name: 'supported-versions', ...tv.string(s) } }), limits)
  t.equal(v('2.0').version, '2.0')
  t.equal(v(' 2.0 ').version, '2.0')
  t.equal(v('2.5, 1.0').version, '2.0', 'a later 2.x minor includes 2.0')
  t.throws(() => v('1.0'), { name: 'SpopError', status: 8 })
  t.throws(() => v('3.0'), { name: 'SpopError', status: 8 })
  t.throws(() => v('banana'), { name: 'SpopError', status: 8 })
  t.throws(() => negotiate(hello({ 'supported-versions': null }), limits), { name: 'SpopError', status: 5 })
})

t.test('health check HELLO', async (t) => {
  const n = negotiate(
    hello({
      capabilities: { name: 'capabilities', ...tv.string('') },
      'engine-id': null,
      healthcheck: { name: 'healthcheck', ...tv.bool(true) },
    }),
    limits,
  )
  t.equal(n.healthcheck, true)
  t.equal(n.engineId, null)
  t.ok(new SpopError('ERR_SPOP_INVALID', 4) instanceof SpopError)
})
