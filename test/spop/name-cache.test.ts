import t from 'tap'
import { internName } from '../../src/spop/name-cache.js'

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
