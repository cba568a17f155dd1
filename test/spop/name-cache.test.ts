import t from 'tap'
import { internName, internValuesOf } from '../../src/spop/name-cache.js'
import { cursor, DataType, type NamedValue, readNamedValue, Status, tv, Writer, writeTypedData } from '../../src/spop/index.js'

const name = (s: string) => {
  const b = Buffer.concat([Buffer.from('..'), Buffer.from(s), Buffer.from('..')])
  return internName(b, 2, b.length - 2)
}

t.test('same bytes give the same string, from any buffer and offset', async (t) => {
  t.equal(name('span'), 'span')
  t.equal(name('span'), 'span')
  t.equal(name(''), '')
  t.equal(name('héllo-ü'), 'héllo-ü', 'UTF-8')
})

t.test('many distinct names (forced collisions) stay correct', async (t) => {
  const names = Array.from({ length: 5000 }, (_, i) => `name-${i}`)
  for (let round = 0; round < 3; round++) {
    for (const n of names) if (name(n) !== n) t.fail(`wrong string for ${n}`)
  }
  // Same length, differing in one byte: never confused.
  for (let i = 0; i < 256; i++) {
    const s = `k${String.fromCharCode(65 + (i % 26))}${i % 7}`
    t.equal(name(s), s)
  }
})

t.test('long names are decoded, not cached', async (t) => {
  const long = 'x'.repeat(100)
  t.equal(name(long), long)
  t.equal(name(`${long}y`), `${long}y`)
})

t.test('the cache keeps a copy: later changes to the frame buffer do not leak in', async (t) => {
  const b = Buffer.from('tag')
  t.equal(internName(b, 0, 3), 'tag')
  b.write('tog')
  t.equal(internName(b, 0, 3), 'tog')
  t.equal(name('tag'), 'tag')
})

t.test('values of registered argument names are interned, and decode the same', async (t) => {
  internValuesOf(['test-span'])
  const encode = (args: NamedValue[]): Buffer => {
    const w = new Writer(256)
    for (const a of args) {
      w.rawString(a.name)
      writeTypedData(w, a)
    }
    return Buffer.from(w.take())
  }
  const args: NamedValue[] = [
    { name: 'test-span', ...tv.string('HAProxy session') },
    { name: 'test-span', ...tv.string('é'.repeat(40)) }, // long: decoded, not cached
    { name: 'test-span', ...tv.int64(7) }, // not a string: untouched
    { name: 'other', ...tv.string('HAProxy session') },
  ]
  for (let round = 0; round < 3; round++) {
    const buf = encode(args)
    const c = cursor(buf, 0, buf.length)
    t.same(args.map(() => readNamedValue(c)), args, `round ${round}`)
  }
  // A registered name with a length running past the buffer is the same typed error.
  const bad = Buffer.from([9, ...Buffer.from('test-span'), DataType.STRING, 50, 0x41])
  t.throws(() => readNamedValue(cursor(bad, 0, bad.length)), { name: 'SpopError', status: Status.INVALID })
})
