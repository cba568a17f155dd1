// Syslog over TCP: octet counting and LF-terminated records on one stream,
// records split across chunks, the bounds, a stream that is neither.

import t from 'tap'
import { type FrameError, SyslogFrames } from '../../../src/intake/log/framing.js'

function frames(max = 100) {
  const records: string[] = []
  const errors: FrameError[] = []
  const f = new SyslogFrames(max, (r) => records.push(r.toString()), (e) => errors.push(e))
  return { f, records, errors }
}

t.test('octet counting and LF framing, whole and byte by byte', async (t) => {
  const stream = Buffer.from('5 <1>ab3 <2>\n<3>legacy\n\n10 <4>0123456')
  for (const chunked of [false, true]) {
    const { f, records, errors } = frames()
    if (chunked) for (const b of stream) t.ok(f.push(Buffer.from([b])))
    else t.ok(f.push(stream))
    t.same(records, ['<1>ab', '<2>', '<3>legacy', '<4>0123456'])
    t.same(errors, [])
    t.equal(f.end(), false, 'nothing left over')
  }
})

t.test('a record over the bound is skipped without being buffered, and the stream goes on', async (t) => {
  const { f, records, errors } = frames(10)
  t.ok(f.push(Buffer.from(`1000 ${'x'.repeat(400)}`)))
  t.ok(f.push(Buffer.from('x'.repeat(600))))
  t.ok(f.push(Buffer.from('4 <1>a')))
  t.same(records, ['<1>a'])
  t.same(errors, ['too_large'])
  t.ok(f.push(Buffer.from(`<${'y'.repeat(30)}`)), 'a legacy record over the bound')
  t.ok(f.push(Buffer.from(`${'y'.repeat(30)}\n<2>b\n`)))
  t.same(records, ['<1>a', '<2>b'])
  t.same(errors, ['too_large', 'too_large'])
})

t.test('a stream that is not syslog: closed', async (t) => {
  for (const bad of ['GET / HTTP/1.1\r\n', '0 x', '1234567890 x', '12a <1>']) {
    const { f, errors } = frames()
    t.equal(f.push(Buffer.from(bad)), false, JSON.stringify(bad))
    t.same(errors, ['bad_frame'])
    t.equal(f.push(Buffer.from('5 <1>ab')), false, 'and stays closed')
  }
})

t.test('a record cut by the end of the stream', async (t) => {
  const { f, records } = frames()
  f.push(Buffer.from('9 <1>ab'))
  t.same(records, [])
  t.equal(f.end(), true)
})
