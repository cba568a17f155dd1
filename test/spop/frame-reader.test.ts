import t from 'tap'
import { decodeFrame, encodeFrame, type Frame, FrameReader, SpopError } from '../../src/spop/index.js'
import { vectors } from '../fixtures/frames.js'

const collect = (reader: FrameReader, chunks: Buffer[]): Frame[] => {
  const out: Frame[] = []
  for (const c of chunks) reader.push(c, (body) => out.push(decodeFrame(body)))
  return out
}

const all = Buffer.concat(vectors.map((v) => v.wire))
const expected = vectors.map((v) => v.frame)

t.test('every vector, cut at every offset', async (t) => {
  for (const v of vectors) {
    for (let cut = 1; cut < v.wire.length; cut++) {
      const got = collect(new FrameReader(16380), [v.wire.subarray(0, cut), v.wire.subarray(cut)])
      t.same(got, [v.frame], `${v.name}, cut at ${cut}`)
    }
  }
})

t.test('all vectors back to back, one byte at a time', async (t) => {
  const reader = new FrameReader(16380)
  const chunks = Array.from(all, (b) => Buffer.from([b]))
  t.same(collect(reader, chunks), expected)
  t.equal(reader.buffered, 0)
  t.notOk(reader.midFrame)
})

t.test('all vectors in one chunk, and in random chunkings', async (t) => {
  t.same(collect(new FrameReader(16380), [all]), expected, 'one chunk')
  let seed = 42
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 23) + 1
  for (let run = 0; run < 50; run++) {
    const chunks: Buffer[] = []
    for (let pos = 0; pos < all.length; ) {
      const n = rnd()
      chunks.push(all.subarray(pos, pos + n))
      pos += n
    }
    t.same(collect(new FrameReader(16380), chunks), expected, `chunking ${run}`)
  }
})

t.test('a length above max-frame-size is refused before buffering', async (t) => {
  const reader = new FrameReader(16380)
  // 4 GiB - 1: only the 4-byte prefix has arrived.
  t.throws(() => reader.push(Buffer.from([0xff, 0xff, 0xff, 0xff]), () => {}), {
    code: 'ERR_SPOP_TOO_BIG',
    status: 3,
  })
  t.equal(reader.buffered, 0, 'nothing held')
  const r2 = new FrameReader(256)
  const big = Buffer.alloc(4)
  big.writeUInt32BE(257)
  t.throws(() => r2.push(big, () => {}), { name: 'SpopError', status: 3 }, '257 > 256')
  const ok = encodeFrame({ type: 'ack', flags: 1, streamId: 1, frameId: 1, actions: [] })
  const r3 = new FrameReader(7)
  t.same(collect(r3, [ok]).length, 1, 'a frame exactly at the limit passes')
})

t.test('a length prefix split over chunks is checked when complete', async (t) => {
  const reader = new FrameReader(16380)
  reader.push(Buffer.from([0x7f, 0xff]), () => {})
  t.ok(reader.midFrame)
  t.throws(() => reader.push(Buffer.from([0xff, 0xff]), () => {}), { name: 'SpopError', status: 3 })
})

t.test('lengths shorter than a frame header are invalid (never an empty frame)', async (t) => {
  for (const len of [0, 1, 6]) {
    const b = Buffer.alloc(4 + len)
    b.writeUInt32BE(len)
    t.throws(() => new FrameReader(16380).push(b, () => {}), { name: 'SpopError', status: 4 }, `length ${len}`)
  }
})

t.test('stop() drops the rest of the chunk', async (t) => {
  const reader = new FrameReader(16380)
  const got: Buffer[] = []
  reader.push(all, (body) => {
    got.push(body)
    reader.stop()
  })
  t.equal(got.length, 1)
})

t.test('an error from the callback propagates and is a SpopError when decoding fails', async (t) => {
  const reader = new FrameReader(16380)
  const garbage = Buffer.from([0, 0, 0, 8, 3, 0, 0, 0, 1, 1, 1, 9])
  t.throws(() => reader.push(garbage, (b) => decodeFrame(b)), SpopError)
})
