import t from 'tap'
import { truncateUtf8 } from '../../src/spop/index.js'

t.test('truncateUtf8: at most n bytes, whole characters only', async (t) => {
  t.equal(truncateUtf8('short', 255), 'short')
  t.equal(truncateUtf8('abcdef', 3), 'abc')
  // é is 2 bytes: 3 bytes hold one and a half; the half is left out.
  t.equal(truncateUtf8('ééé', 3), 'é')
  t.equal(truncateUtf8('€€', 5), '€', '3-byte characters')
  t.equal(truncateUtf8('😀😀', 7), '😀', '4-byte characters (a surrogate pair in JavaScript)')
  t.equal(truncateUtf8('😀', 3), '')
  t.equal(truncateUtf8('a😀', 4), 'a')
  for (let n = 0; n < 40; n++) {
    const s = truncateUtf8('aé€😀'.repeat(5), n)
    t.ok(Buffer.byteLength(s) <= n && !s.includes('\ufffd'), `${n} bytes`)
    t.ok('aé€😀'.repeat(5).startsWith(s))
  }
})
