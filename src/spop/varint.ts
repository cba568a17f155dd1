// HAProxy's variable-length integer (include/haproxy/intops.h), NOT LEB128.
//
//   0 <= X < 240        : 1 byte   (7.875 bits)  [ XXXX XXXX ]
//   240 <= X < 2288     : 2 bytes  (11 bits)     [ 1111 XXXX ] [ 0XXX XXXX ]
//   2288 <= X < 264432  : 3 bytes  (18 bits)     [ 1111 XXXX ] [ 1XXX XXXX ] [ 0XXX XXXX ]
//   264432 <= X < 33818864 : 4 bytes, and so on up to 10 bytes for 2^64-1.
//
// The decoder adds back each whole byte, continuation bit included, which is
// why the encoder subtracts 240 (then 128) before every shift. Values are
// unsigned 64-bit: `number` up to 2^53 - 1, `bigint` from 2^53 on.

import { invalid, truncated } from './errors.js'

/** A decoded 64-bit unsigned value: a number when it is a safe integer, else a bigint. */
export type Uint64 = number | bigint

const TWO_64 = 1n << 64n
const MAX_VARINT_BYTES = 10

/** Number of bytes the varint encoding of `v` takes. */
export function varintLength(v: Uint64): number {
  if (typeof v === 'number') {
    if (v < 240) return 1
    if (v < 2288) return 2
    if (v < 264432) return 3
    if (v < 33818864) return 4
  }
  let n = BigInt(v)
  if (n < 240n) return 1
  let len = 1
  n = (n - 240n) >> 4n
  while (n >= 128n) {
    len++
    n = (n - 128n) >> 7n
  }
  return len + 1
}

/**
 * Writes `v` at `offset` and returns the offset after it. The caller ensures
 * `buf` has room (at most 10 bytes). Throws RangeError outside [0, 2^64).
 */
export function writeVarint(buf: Uint8Array, offset: number, v: Uint64): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) {
      if (Number.isInteger(v)) return writeVarint(buf, offset, BigInt(v))
      throw new RangeError(`varint: not an unsigned integer: ${v}`)
    }
    if (v < 240) {
      buf[offset] = v
      return offset + 1
    }
    if (v < 33818864) {
      // Fast path in plain arithmetic: every intermediate value stays below 2^31.
      buf[offset++] = (v & 0x0f) | 0xf0
      v = (v - 240) >>> 4
      while (v >= 128) {
        buf[offset++] = (v & 0x7f) | 0x80
        v = (v - 128) >>> 7
      }
      buf[offset] = v
      return offset + 1
    }
  }
  let n = BigInt(v)
  if (n < 0n || n >= TWO_64) throw new RangeError(`varint: out of the uint64 range: ${n}`)
  if (n < 240n) {
    buf[offset] = Number(n)
    return offset + 1
  }
  buf[offset++] = Number(n & 0x0fn) | 0xf0
  n = (n - 240n) >> 4n
  while (n >= 128n) {
    buf[offset++] = Number(n & 0x7fn) | 0x80
    n = (n - 128n) >> 7n
  }
  buf[offset] = Number(n)
  return offset + 1
}

/** A read position over a buffer: what every decoder in src/spop/ advances. */
export interface Cursor {
  readonly buf: Buffer
  pos: number
  readonly end: number
}

/**
 * Reads one varint at `c.pos` and advances it. Throws a truncated error if the
 * buffer ends inside the varint, invalid if it is longer than 10 bytes or
 * does not fit in 64 bits (HAProxy itself would wrap around).
 */
export function readVarint(c: Cursor): Uint64 {
  const { buf, end } = c
  let pos = c.pos
  if (pos >= end) throw truncated('varint')
  const b0 = buf[pos++]!
  if (b0 < 240) {
    c.pos = pos
    return b0
  }
  // Up to 8 bytes (53 bits: dates in microseconds take 8) the terms are
  // positive integers, so a sum that ends at most 2^53 - 1 was exact all the
  // way in a double; a larger one is re-read in BigInt.
  let v = b0
  let scale = 16 // 2^4
  for (let i = 1; i < 8; i++) {
    if (pos >= end) throw truncated('varint')
    const b = buf[pos++]!
    v += b * scale
    if (b < 128) {
      if (v > Number.MAX_SAFE_INTEGER) break
      c.pos = pos
      return v
    }
    scale *= 128
  }
  return readLongVarint(c)
}

/** The 8-to-10-byte tail in BigInt, re-reading from the start of the varint. */
function readLongVarint(c: Cursor): Uint64 {
  const { buf, end } = c
  let pos = c.pos
  let v = BigInt(buf[pos++]!)
  let shift = 4n
  for (let i = 1; ; i++) {
    if (i >= MAX_VARINT_BYTES) throw invalid('varint longer than 10 bytes')
    if (pos >= end) throw truncated('varint')
    const b = buf[pos++]!
    v += BigInt(b) << shift
    shift += 7n
    if (b < 128) break
  }
  if (v >= TWO_64) throw invalid('varint larger than 64 bits')
  c.pos = pos
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
}

/** Reinterprets a uint64 as the two's-complement int64 it encodes (INT32/INT64 values). */
export function toSigned64(v: Uint64): Uint64 {
  if (typeof v === 'number') return v // < 2^53, so the sign bit is clear
  const s = BigInt.asIntN(64, v)
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s
}

/** The uint64 bit pattern of a signed value, for encoding INT32/INT64 (negative values take 10 bytes). */
export function toUnsigned64(v: Uint64): Uint64 {
  if (typeof v === 'number') return v >= 0 ? v : BigInt.asUintN(64, BigInt(v))
  return BigInt.asUintN(64, v)
}
