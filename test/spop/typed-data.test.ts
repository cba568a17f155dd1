import t from 'tap'
import {
  cursor,
  readTypedData,
  SpopError,
  type TypedValue,
  tv,
  Writer,
  writeTypedData,
} from '../../src/spop/index.js'
import { formatIpv6, parseIpv6 } from '../../src/spop/ip-address.js'
import { bytes } from '../helpers/bytes.js'

const encode = (v: TypedValue): Buffer => {
  const w = new Writer(16)
  writeTypedData(w, v)
  return w.take()
}
const decode = (b: Buffer): TypedValue => {
  const c = cursor(b)
  const v = readTypedData(c)
  if (c.pos !== b.length) throw new Error(`consumed ${c.pos} of ${b.length}`)
  return v
}

const cases: Array<[string, TypedValue, Buffer]> = [
  ['NULL', tv.null(), bytes`00`],
  ['BOOL true (flag bit 0x10)', tv.bool(true), bytes`11`],
  ['BOOL false', tv.bool(false), bytes`01`],
  ['INT32 75', tv.int32(75), bytes`02 4b`],
  ['INT32 -1, sign-extended to 64 bits', tv.int32(-1), bytes`02 ff f0 fe fe fe fe fe fe fe 0e`],
  ['UINT32 2^32-1', tv.uint32(2 ** 32 - 1), bytes`03 ff f0 fe fe 7e`],
  ['INT64 8080', tv.int64(8080), bytes`04 f0 ea 02`],
  ['INT64 -5', tv.int64(-5), bytes`04 fb f0 fe fe fe fe fe fe fe 0e`],
  ['INT64 min', tv.int64(-(2n ** 63n)), bytes`04 f0 f1 fe fe fe fe fe fe fe 06`],
  ['UINT64 2^64-1', tv.uint64(2n ** 64n - 1n), bytes`05 ff f0 fe fe fe fe fe fe fe 0e`],
  ['IPV4', tv.ipv4('192.168.1.10'), bytes`06 c0 a8 01 0a`],
  ['IPV6 loopback', tv.ipv6('::1'), bytes`07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01`],
  ['IPV6 documentation prefix', tv.ipv6('2001:db8::8:800:200c:417a'), bytes`07 20 01 0d b8 00 00 00 00 00 08 08 00 20 0c 41 7a`],
  ['IPV6 v4-mapped', tv.ipv6('::ffff:10.0.0.1'), bytes`07 00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 01`],
  ['STRING empty', tv.string(''), bytes`08 00`],
  ['STRING UTF-8 (length in bytes)', tv.string('héllo'), Buffer.from('0806' + Buffer.from('héllo').toString('hex'), 'hex')],
  ['BINARY', tv.binary(Buffer.from([0, 1, 255])), bytes`09 03 00 01 ff`],
]

t.test('every type: exact bytes and round trip', async (t) => {
  for (const [name, value, wire] of cases) {
    t.same(encode(value), wire, `${name}: encode`)
    t.same(decode(wire), value, `${name}: decode`)
  }
})

t.test('a long string takes a multi-byte length', async (t) => {
  const s = 'x'.repeat(300)
  const wire = encode(tv.string(s))
  t.same(wire.subarray(0, 3), Buffer.from([0x08, 0xfc, 0x03]), '300 = fc 03')
  t.equal(decode(wire).value, s)
})

t.test('BINARY values are copies, not views of the frame', async (t) => {
  const wire = bytes`09 02 aa bb`
  const v = decode(wire)
  wire[2] = 0
  t.same(v.value, Buffer.from([0xaa, 0xbb]))
})

t.test('malformed typed data is a typed error', async (t) => {
  const bad: Array<[string, Buffer]> = [
    ['reserved type 10', bytes`0a`],
    ['reserved type 15', bytes`0f 00`],
    ['string longer than the buffer', bytes`08 05 "abc"`],
    ['binary longer than the buffer', bytes`09 f0 10 00`],
    ['ipv4 cut short', bytes`06 7f 00`],
    ['ipv6 cut short', bytes`07 00 00 00 00`],
    ['int64 cut short', bytes`04 f0`],
    ['no type byte', Buffer.alloc(0)],
  ]
  for (const [name, wire] of bad) t.throws(() => decode(wire), SpopError, name)
})

t.test('IPv6 text follows inet_ntop', async (t) => {
  const cases: Array<[string, string]> = [
    ['0000:0000:0000:0000:0000:0000:0000:0000', '::'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['fe80:0000:0000:0000:0000:0000:0000:0000', 'fe80::'],
    ['0000:0000:0000:0000:0000:0000:0102:0304', '::1.2.3.4'],
    ['0000:0000:0000:0000:0000:ffff:0102:0304', '::ffff:1.2.3.4'],
  ]
  for (const [full, text] of cases) {
    const b = Buffer.from(full.replaceAll(':', ''), 'hex')
    t.equal(formatIpv6(b), text, full)
    t.same(parseIpv6(text), b, `parse ${text}`)
  }
  for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7', '::1.2.3']) {
    t.equal(parseIpv6(bad), null, `rejects ${bad}`)
  }
})

t.test('encoder rejects values it cannot represent', async (t) => {
  t.throws(() => encode(tv.ipv4('300.1.1.1')), TypeError)
  t.throws(() => encode(tv.ipv6('nope')), TypeError)
  t.throws(() => encode(tv.uint64(-1)), RangeError)
})
