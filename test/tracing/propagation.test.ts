import fc from 'fast-check'
import t from 'tap'
import {
  extract,
  formatBaggage,
  inject,
  parseB3,
  parseBaggage,
  parseJaeger,
  parsePropagators,
  parseTraceparent,
} from '../../src/tracing/propagation.js'

const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const S = '00f067aa0ba902b7'

t.test('traceparent: valid, flags, future versions; invalid forms give a reason', async (t) => {
  t.same(parseTraceparent(`00-${T}-${S}-01`), { traceId: T, spanId: S, sampled: true, traceState: '' })
  t.same(parseTraceparent(`00-${T}-${S}-00`, 'rojo=00f067aa0ba902b7, congo=t61rcWkgMzE'), {
    traceId: T,
    spanId: S,
    sampled: false,
    traceState: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
  })
  t.equal((parseTraceparent(`01-${T}-${S}-09-extra`) as { sampled: boolean }).sampled, true, 'a future version with extra fields')
  const bad: Array<[string, string]> = [
    ['', 'malformed'],
    ['garbage', 'malformed'],
    [`ff-${T}-${S}-01`, 'bad_version'],
    [`0-${T}-${S}-01`, 'bad_version'],
    [`00-${T}-${S}-01-extra`, 'malformed'],
    [`00-${T.toUpperCase()}-${S}-01`, 'malformed'],
    [`00-${T.slice(1)}-${S}-01`, 'malformed'],
    [`00-${'0'.repeat(32)}-${S}-01`, 'zero_id'],
    [`00-${T}-${'0'.repeat(16)}-01`, 'zero_id'],
    [`00-${T}-${S}-0x`, 'malformed'],
  ]
  for (const [h, why] of bad) t.equal(parseTraceparent(h), why, JSON.stringify(h))
  t.equal((parseTraceparent(`00-${T}-${S}-01`, 'bad key=x') as { traceState: string }).traceState, '', 'a bad tracestate is dropped, not the context')
})

t.test('traceparent: the fast path for version 00 agrees with the W3C rules on near-valid headers', async (t) => {
  // The rules as regular expressions, independent of the parser's fast path.
  const reference = (h: string): string => {
    const parts = h.trim().split('-')
    if (parts.length < 4) return 'malformed'
    const [version, traceId, spanId, flags] = parts as [string, string, string, string]
    if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return 'bad_version'
    if (version === '00' && parts.length !== 4) return 'malformed'
    if (!/^[0-9a-f]{32}$/.test(traceId) || !/^[0-9a-f]{16}$/.test(spanId) || !/^[0-9a-f]{2}$/.test(flags)) return 'malformed'
    if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return 'zero_id'
    return `${traceId}/${spanId}/${parseInt(flags, 16) & 1}`
  }
  const got = (h: string): string => {
    const r = parseTraceparent(h)
    return typeof r === 'string' ? r : `${r.traceId}/${r.spanId}/${r.sampled ? 1 : 0}`
  }
  const valid = `00-${T}-${S}-01`
  // A valid header with a few characters replaced by ones that matter here.
  const mutated = fc
    .array(fc.tuple(fc.nat({ max: 54 }), fc.constantFrom('0', '9', 'a', 'f', 'g', 'A', 'F', '-', ' ', 'z')), { maxLength: 3 })
    .map((edits) => {
      const c = valid.split('')
      for (const [i, ch] of edits) c[i] = ch
      return c.join('')
    })
  const zeros = fc.constantFrom(`00-${'0'.repeat(32)}-${S}-01`, `00-${T}-${'0'.repeat(16)}-00`, ` ${valid.slice(1)}`, `${valid} `)
  fc.assert(fc.property(fc.oneof(mutated, zeros), (h) => got(h) === reference(h)), { numRuns: 20_000, seed: 5 })
  t.pass('20,000 headers: same context or the same reason')
})

t.test('B3 single and multi, Jaeger', async (t) => {
  t.same(parseB3(`${T}-${S}-1`), { traceId: T, spanId: S, sampled: true, traceState: '' })
  t.same(parseB3(`a3ce929d0e0e4736-${S}-0-05e3ac9a4f6e3b90`), { traceId: `0000000000000000a3ce929d0e0e4736`, spanId: S, sampled: false, traceState: '' })
  t.same(parseB3(`${T}-${S}`), { traceId: T, spanId: S, sampled: true, traceState: '' }, 'no decision: sampled')
  t.same(parseB3('0'), { decision: { sampled: false, debug: false } }, 'b3: 0 is a decision without a context: deny')
  t.same(parseB3(' 1 '), { decision: { sampled: true, debug: false } }, 'b3: 1: accept')
  t.same(parseB3('d'), { decision: { sampled: true, debug: true } }, 'b3: d: debug')
  t.same(parseB3(`${T}-${S}-d`), { traceId: T, spanId: S, sampled: true, traceState: '', debug: true }, 'debug with ids')
  t.equal(parseB3('2'), 'malformed')
  t.equal(parseB3(`${T}-${S}-1-${S}-extra`), 'malformed')
  t.equal(parseB3(`${T}-${S}-x`), 'malformed')
  const multi = new Map([['x-b3-traceid', T], ['x-b3-spanid', S], ['x-b3-sampled', '0']])
  t.same(extract(multi, ['b3multi']).context, { traceId: T, spanId: S, sampled: false, traceState: '' })
  t.same(parseJaeger(`${T}:${S}:0:1`), { traceId: T, spanId: S, sampled: true, traceState: '' })
  t.same(parseJaeger('a3ce929d0e0e4736%3Af067aa0ba902b7%3A0%3A0'), {
    traceId: '0000000000000000a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    sampled: false,
    traceState: '',
  }, 'URL-encoded, short ids padded')
  t.equal(parseJaeger(`${T}:${S}:0`), 'malformed')
})

t.test('baggage: parse and format, properties dropped, bounded', async (t) => {
  const b = parseBaggage('userId=alice, serverNode=DF%2028;prop=1,isProduction=false,bad key=x,=novalue')
  t.same([...b], [['userId', 'alice'], ['serverNode', 'DF 28'], ['isProduction', 'false']])
  t.equal(formatBaggage(b), 'userId=alice,serverNode=DF%2028,isProduction=false')
  t.equal(parseBaggage('k=v,'.repeat(5000)).size, 0, 'over 8 KiB: ignored')
})

t.test('extract: configured propagators in order, first valid wins, invalid counted', async (t) => {
  const carrier = new Map([
    ['traceparent', `00-${T}-${S}-01`],
    ['b3', `${'1'.repeat(32)}-${'2'.repeat(16)}-1`],
    ['baggage', 'tenant=acme'],
  ])
  const e = extract(carrier, ['tracecontext', 'baggage', 'b3'])
  t.same([e.context?.traceId, e.from, [...e.baggage], e.invalid], [T, 'tracecontext', [['tenant', 'acme']], null])
  t.equal(extract(carrier, ['b3', 'tracecontext']).from, 'b3', 'order matters')
  t.equal(extract(carrier, ['jaeger']).context, null, 'not configured: not read')
  const bad = extract(new Map([['traceparent', 'nonsense'], ['b3', `${T}-${S}-1`]]), ['tracecontext', 'b3'])
  t.same([bad.from, bad.invalid], ['b3', 'tracecontext:malformed'], 'falls through, keeps the reason')
  t.same(extract(new Map(), ['tracecontext']), { context: null, from: null, sampling: null, baggage: new Map(), invalid: null })
})

t.test('inject: one variable per format; names HAProxy accepts', async (t) => {
  const c = { traceId: T, spanId: S, sampled: true, traceState: 'rojo=1' }
  const vars = inject(c, new Map([['tenant', 'a b']]), ['tracecontext', 'baggage', 'b3', 'b3multi', 'jaeger'])
  t.same(vars, [
    { name: 'traceparent', value: `00-${T}-${S}-01` },
    { name: 'tracestate', value: 'rojo=1' },
    { name: 'baggage', value: 'tenant=a%20b' },
    { name: 'b3', value: `${T}-${S}-1` },
    { name: 'x_b3_traceid', value: T },
    { name: 'x_b3_spanid', value: S },
    { name: 'x_b3_sampled', value: '1' },
    { name: 'uber_trace_id', value: `${T}:${S}:0:1` },
  ])
  for (const v of vars) t.match(v.name, /^[a-zA-Z0-9._]+$/)
  t.same(inject({ ...c, sampled: false, traceState: '' }, null, ['tracecontext', 'baggage']), [{ name: 'traceparent', value: `00-${T}-${S}-00` }])
})

t.test('OTEL_PROPAGATORS', async (t) => {
  t.same(parsePropagators('tracecontext,baggage'), { propagators: ['tracecontext', 'baggage'], unknown: [] })
  t.same(parsePropagators(' B3 , jaeger,xray'), { propagators: ['b3', 'jaeger'], unknown: ['xray'] })
  t.same(parsePropagators('none'), { propagators: [], unknown: [] })
})

t.test('B3 decisions without ids: honoured as the upstream sampling, never as malformed', async (t) => {
  const ex = (headers: Record<string, string>, p: Array<'b3' | 'b3multi' | 'tracecontext'> = ['b3', 'b3multi']) =>
    extract(new Map(Object.entries(headers)), p)
  for (const [h, sampled, debug] of [['0', false, false], ['1', true, false], ['d', true, true]] as const) {
    const e = ex({ b3: h })
    t.same([e.context, e.sampling, e.invalid], [null, { sampled, debug }, null], `b3: ${h}`)
  }
  t.same(ex({ 'x-b3-sampled': '0' }).sampling, { sampled: false, debug: false }, 'X-B3-Sampled: 0 alone')
  t.same(ex({ 'x-b3-sampled': 'true' }).sampling, { sampled: true, debug: false }, 'X-B3-Sampled: true alone')
  t.same(ex({ 'x-b3-flags': '1' }).sampling, { sampled: true, debug: true }, 'X-B3-Flags: 1 alone: debug')
  t.same(ex({ 'x-b3-sampled': 'maybe' }).invalid, 'b3multi:malformed')
  t.same(ex({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' }).sampling, { sampled: true, debug: true }, 'debug with ids')
  // A context carries its own flag; the first configured propagator with a context or a decision decides.
  const both = { b3: '0', traceparent: `00-${T}-${S}-01` }
  const e = ex(both, ['b3', 'tracecontext'])
  t.same([e.context?.traceId, e.from, e.sampling], [T, 'tracecontext', { sampled: false, debug: false }], 'b3: 0 first: ids from traceparent, the decision from b3')
  t.same(ex(both, ['tracecontext', 'b3']).sampling, { sampled: true, debug: false }, 'traceparent first: its flag')
  t.same(ex({ traceparent: `00-${T}-${S}-00` }, ['tracecontext']).sampling, { sampled: false, debug: false })
  t.equal(ex({}, ['tracecontext', 'b3']).sampling, null, 'no header: nothing said')
})
