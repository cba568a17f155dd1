// The request bodies' memory, recycled between the encoder and the workers:
// sizes, the bound on what is kept, and which buffers may move as views.

import t from 'tap'
import { BodyPool } from '../../src/export/body-pool.js'
import { ownedBody } from '../../src/export/pool.js'

t.test('a new buffer of its own, rounded up; reused once given back', async (t) => {
  const bodies = new BodyPool()
  const a = bodies.take(1000)
  t.same([a.byteOffset, a.byteLength, a.buffer.byteLength], [0, 65536, 65536], 'offset 0, a whole ArrayBuffer of 64 KiB')
  t.equal(bodies.allocated, 1)
  bodies.give(a.buffer as ArrayBuffer)
  t.equal(bodies.kept, 1)
  const b = bodies.take(60_000)
  t.equal(b.buffer, a.buffer, 'the same memory again')
  t.equal(bodies.allocated, 1, 'nothing allocated')
  t.equal(bodies.kept, 0)
  const c = bodies.take(200_000)
  t.equal(c.byteLength, 4 * 65536, 'too large for what is kept: a new one')
  t.equal(bodies.allocated, 2)
})

t.test('the smallest buffer that fits is taken', async (t) => {
  const bodies = new BodyPool()
  const big = bodies.take(500_000)
  const small = bodies.take(10)
  bodies.give(big.buffer as ArrayBuffer)
  bodies.give(small.buffer as ArrayBuffer)
  t.equal(bodies.take(100).buffer, small.buffer)
  t.equal(bodies.take(100).buffer, big.buffer, 'then the large one')
})

t.test('bounded: four kept at most, the larger ones; none over 8 MiB; detached ones ignored', async (t) => {
  const bodies = new BodyPool()
  const sizes = [1, 2, 3, 4, 5].map((k) => k * 65536)
  for (const n of sizes) bodies.give(new ArrayBuffer(n))
  t.equal(bodies.kept, 4)
  t.equal(bodies.take(1).byteLength, 2 * 65536, 'the smallest (64 KiB) was let go')
  bodies.give(new ArrayBuffer(9 * 1024 * 1024))
  t.equal(bodies.kept, 3, 'a buffer larger than 8 MiB is left to the GC')
  const moved = new ArrayBuffer(100)
  structuredClone(moved, { transfer: [moved] })
  bodies.give(moved)
  t.equal(bodies.kept, 3, 'a detached buffer is not kept')
})

t.test("a view of the start of the pool's buffer moves whole; any other short view is copied", async (t) => {
  const bodies = new BodyPool()
  const buf = bodies.take(100)
  const view = buf.subarray(0, 100)
  t.equal(ownedBody(view, bodies), view, 'moved as it is (the worker reads its 100 bytes)')
  t.not(ownedBody(view), view, 'without the pool it is copied')
  const foreign = Buffer.allocUnsafeSlow(1000).subarray(0, 10)
  t.not(ownedBody(foreign, bodies), foreign, 'a view of a buffer the pool did not make is copied')
  const adopted = new ArrayBuffer(1000)
  bodies.adopt(adopted)
  const v = new Uint8Array(adopted, 0, 10)
  t.equal(ownedBody(v, bodies), v, 'an adopted one (a body back for a retry) moves as it is')
  t.equal(bodies.kept, 0, 'adopting does not make it reusable')
})
