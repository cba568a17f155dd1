import t from 'tap'
import fc from 'fast-check'
import { cursor, readVarint, SpopError, toSigned64, toUnsigned64, varintLength } from '../../src/spop/index.js'
import { writeVarint } from '../../src/spop/varint.js'
import { hex } from '../helpers/bytes.js'

const encode = (v: number | bigint): Buffer => {
  const b = Buffer.alloc(10)
  return b.subarray(0, writeVarint(b, 0, v))
}
const decode = (b: Buffer): number | bigint => {
  const c = cursor(b)
  const v = readVarint(c)
  if (c.pos !== b.length) throw new Error(`consumed ${c.pos} of ${b.length}`)
  return v
}

// docs/PROTOCOL.md's table, plus the byte-count boundaries either side.
const table: Array<[number | bigint, string]> = [
  [0, '00'],
  [1, '01'],
  [239, 'ef'],
  [240, 'f000'],
  [256, 'f001'],
  [2287, 'ff7f'],
  [2288, 'f08000'],
  [2289, 'f18000'],
  [8080, 'f0ea02'],
  [16380, 'fcf006'],
  [264431, 'ffff7f'],
  [264432, 'f0808000'],
  [33818863, 'ffffff7f'],
  [33818864, 'f0808080' + '00'],
  [2 ** 32 - 1, ''],
  [Number.MAX_SAFE_INTEGER, ''],
  [2n ** 53n, ''],
  [2n ** 63n, ''],
  [2n ** 64n - 1n, 'fff0fefefefefefefe0e'],
]

t.test('boundaries: exact bytes, length and round trip', async (t) => {
  for (const [v, expected] of table) {
    const wire = encode(v)
    if (expected) t.equal(wire.toString('hex'), expected, `${v} encodes as ${expected}`)
    t.equal(varintLength(v), wire.length, `${v} takes ${wire.length} bytes`)
    const back = decode(wire)
    t.equal(typeof back, v <= Number.MAX_SAFE_INTEGER ? 'number' : 'bigint', `${v} decodes to the right JS type`)
    t.equal(BigInt(back), BigInt(v), `${v} round-trips`)
  }
})

t.test('2^53 and above decode as bigint, below as number', async (t) => {
  t.equal(decode(encode(2 ** 53 - 1)), 2 ** 53 - 1)
  t.equal(decode(encode(2n ** 53n)), 2n ** 53n)
})

t.test('8-byte varints (dates in microseconds): numbers up to 2^53 - 1, exact, then bigint', async (t) => {
  const values: Array<number | bigint> = [2 ** 46 - 1, 2 ** 46, 2 ** 47 + 12345, 1_763_780_123_456_789, 2 ** 53 - 2, 2 ** 53 - 1, 2n ** 53n, 2n ** 53n + 1n, 2n ** 55n - 1n]
  // Around the 7/8/9-byte boundaries and 2^53, where the double sum must stop.
  for (let k = -300; k <= 300; k++) values.push(BigInt(2 ** 53) + BigInt(k * 977))
  for (const v of values) {
    const n = BigInt(v)
    const back = decode(encode(n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n))
    if (typeof back !== (n <= BigInt(Number.MAX_SAFE_INTEGER) ? 'number' : 'bigint') || BigInt(back) !== n) {
      t.fail(`${n} decoded as ${typeof back} ${back}`)
      return
    }
  }
  t.pass(`${values.length} values decode exactly, with the right JS type`)
  t.equal(varintLength(1_763_780_123_456_789), 8, 'a date in microseconds takes 8 bytes')
})

t.test('negative int64 values: two-complement, 10 bytes', async (t) => {
  t.equal(encode(toUnsigned64(-1)).toString('hex'), 'fff0fefefefefefefe0e', '-1 as sent by HAProxy for int(-1)')
  t.equal(encode(toUnsigned64(-5)).toString('hex'), 'fbf0fefefefefefefe0e', '-5 as accepted by HAProxy')
  t.equal(toSigned64(decode(hex('fff0fefefefefefefe0e'))), -1)
  t.equal(toSigned64(decode(hex('fbf0fefefefefefefe0e'))), -5)
  t.equal(toSigned64(toUnsigned64(-(2n ** 63n))), -(2n ** 63n), 'int64 min')
  t.equal(toSigned64(2n ** 63n - 1n), 2n ** 63n - 1n, 'int64 max')
})

t.test('truncated, over-long and over-wide varints are typed errors', async (t) => {
  for (const bad of ['f0', 'ff80', 'f08080', 'fff0fefefefefefefe']) {
    t.throws(() => decode(hex(bad)), { code: 'ERR_SPOP_TRUNCATED', status: 4 }, `${bad}: truncated`)
  }
  t.throws(() => decode(hex('fff0fefefefefefefefe0e')), { code: 'ERR_SPOP_INVALID', status: 4 }, '11 bytes')
  t.throws(() => decode(hex('fff0fefefefefefefe7f')), { code: 'ERR_SPOP_INVALID' }, '10 bytes but >= 2^64')
  t.throws(() => decode(Buffer.alloc(0)), SpopError, 'empty buffer')
})

t.test('encoder refuses values outside uint64', async (t) => {
  t.throws(() => encode(-1), RangeError)
  t.throws(() => encode(2n ** 64n), RangeError)
  t.throws(() => encode(1.5), RangeError)
})

t.test('property: every uint64 round-trips and its length matches', async () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
      const wire = encode(v)
      return wire.length === varintLength(v) && BigInt(decode(wire)) === v
    }),
    { numRuns: 5000 },
  )
  fc.assert(
    fc.property(fc.nat(), (v) => decode(encode(v)) === v),
    { numRuns: 5000 },
  )
})
