// Property-based tests of the codec (fast-check, bounded runs): any bytes
// decode to frames or to a SpopError, never to anything else; any frame the
// encoder accepts decodes back to itself.

import t from 'tap'
import fc from 'fast-check'
import {
  type Action,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameReader,
  type NamedValue,
  SpopError,
  type TypedValue,
  tv,
} from '../../src/spop/index.js'
import { vectors } from '../fixtures/frames.js'

const RUNS = 3000

const decodeAll = (data: Uint8Array, split: number[]): Frame[] => {
  const reader = new FrameReader(16380)
  const frames: Frame[] = []
  const buf = Buffer.from(data)
  let pos = 0
  for (const n of [...split, buf.length]) {
    reader.push(buf.subarray(pos, pos + n), (body) => frames.push(decodeFrame(body)))
    pos += n
    if (pos >= buf.length) break
  }
  return frames
}

const onlySpopErrors = (fn: () => unknown): boolean => {
  try {
    fn()
    return true
  } catch (e) {
    if (e instanceof SpopError && typeof e.status === 'number') return true
    throw e
  }
}

t.test('random bytes: frames or a SpopError, nothing else', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(64), { maxLength: 8 }), (data, split) =>
      onlySpopErrors(() => decodeAll(data, split)),
    ),
    { numRuns: RUNS },
  )
})

t.test('random frame bodies behind a valid length prefix', async () => {
  // Bias towards the decoder's interesting paths: a real type byte and FIN.
  const body = fc
    .tuple(
      fc.constantFrom(0, 1, 2, 3, 101, 102, 103, 7, 255),
      fc.constantFrom(0, 1, 3),
      fc.uint8Array({ maxLength: 400 }),
    )
    .map(([type, flags, rest]) => Buffer.concat([Buffer.from([type, 0, 0, 0, flags]), rest]))
  fc.assert(fc.property(body, (b) => onlySpopErrors(() => decodeFrame(b))), { numRuns: RUNS })
})

t.test('mutated golden vectors: frames or a SpopError', async () => {
  const seeds = vectors.map((v) => v.wire)
  fc.assert(
    fc.property(
      fc.constantFrom(...seeds),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      (seed, flips) => {
        const b = Buffer.from(seed)
        for (const [pos, byte] of flips) b[pos % b.length] = byte
        return onlySpopErrors(() => decodeAll(b, []))
      },
    ),
    { numRuns: RUNS },
  )
})

// Generators of valid values, normalized the way the decoder normalizes them.
const anyUint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => tv.uint64(v).value as number | bigint)
const anyInt64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => tv.int64(v).value as number | bigint)
const ipv4 = fc.ipV4()
const ipv6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 })
const typedValue: fc.Arbitrary<TypedValue> = fc.oneof(
  fc.constant(tv.null()),
  fc.boolean().map(tv.bool),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map(tv.int32),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(tv.uint32),
  anyInt64.map(tv.int64),
  anyUint64.map(tv.uint64),
  ipv4.map(tv.ipv4),
  ipv6Bytes.map((b) => {
    // Text form via a decode of the bytes, so the generator needs no formatter of its own.
    const f = decodeFrame(Buffer.concat([Buffer.from([1, 0, 0, 0, 1, 0, 0, 1, 0x61, 7]), b]))
    return tv.ipv6((f as { kv: NamedValue[] }).kv[0]!.value as string)
  }),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(tv.string),
  fc.uint8Array({ maxLength: 40 }).map((b) => tv.binary(Buffer.from(b))),
)
const named = fc.tuple(fc.string({ maxLength: 12 }), typedValue).map(([name, v]): NamedValue => ({ name, ...v }))
const id = fc.oneof(fc.nat(), anyUint64)
const action: fc.Arbitrary<Action> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 4 }), fc.string({ maxLength: 20 }), typedValue)
    .map(([scope, name, value]): Action => ({ type: 1, scope: scope as 0, name, value })),
  fc
    .tuple(fc.integer({ min: 0, max: 4 }), fc.string({ maxLength: 20 }))
    .map(([scope, name]): Action => ({ type: 2, scope: scope as 0, name })),
)
const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constantFrom('haproxy-hello', 'agent-hello', 'haproxy-disconnect', 'agent-disconnect'),
    flags: fc.constant(1),
    streamId: fc.constant(0),
    frameId: fc.constant(0),
    kv: fc.array(named, { maxLength: 6 }),
  }) as fc.Arbitrary<Frame>,
  fc.record({
    type: fc.constant('notify' as const),
    flags: fc.constantFrom(1, 3),
    streamId: id,
    frameId: id,
    messages: fc.array(fc.record({ name: fc.string({ maxLength: 20 }), args: fc.array(named, { maxLength: 12 }) }), {
      maxLength: 4,
    }),
  }),
  fc.record({
    type: fc.constant('ack' as const),
    flags: fc.constant(1),
    streamId: id,
    frameId: id,
    actions: fc.array(action, { maxLength: 6 }),
  }),
)

t.test('any valid frame round-trips, and survives any chunking', async () => {
  fc.assert(
    fc.property(fc.array(frame, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(50), { maxLength: 10 }), (frames, split) => {
      const wire = Buffer.concat(frames.map(encodeFrame))
      const back = decodeAll(wire, split)
      return JSON.stringify(back, big) === JSON.stringify(frames, big)
    }),
    { numRuns: 2000 },
  )
})

function big(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return `${v}n`
  if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return v
  return v
}
