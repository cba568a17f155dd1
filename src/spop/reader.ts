// Bounds-checked reads over a frame body: the primitives every payload
// decoder uses. A read past `end` throws a truncated SpopError (status 4).

import { truncated } from './errors.js'
import { internName } from './name-cache.js'
import { type Cursor, readVarint } from './varint.js'

export type { Cursor } from './varint.js'

export function cursor(buf: Buffer, pos = 0, end = buf.length): Cursor {
  return { buf, pos, end }
}

export function readU8(c: Cursor): number {
  if (c.pos >= c.end) throw truncated('byte')
  return c.buf[c.pos++]!
}

export function readU32(c: Cursor): number {
  if (c.pos + 4 > c.end) throw truncated('32-bit field')
  const v = c.buf.readUInt32BE(c.pos)
  c.pos += 4
  return v
}

/** A varint length, checked against what is left so a hostile length cannot run past the frame. */
export function readLength(c: Cursor, what: string): number {
  const len = readVarint(c)
  if (typeof len !== 'number' || len > c.end - c.pos) throw truncated(what)
  return len
}

/** A raw string: varint length then UTF-8 bytes, no type byte (names of keys, messages, args, vars). */
export function readRawString(c: Cursor): string {
  const len = readLength(c, 'string')
  const start = c.pos
  c.pos += len
  return internName(c.buf, start, c.pos)
}

/** Length-prefixed bytes, copied so the value never pins the socket chunk it came from. */
export function readBytes(c: Cursor): Buffer {
  const len = readLength(c, 'binary')
  const start = c.pos
  c.pos += len
  return Buffer.from(c.buf.subarray(start, c.pos))
}

/** `n` fixed bytes (IP addresses), as a view: callers convert them at once. */
export function readFixed(c: Cursor, n: number, what: string): Buffer {
  if (c.pos + n > c.end) throw truncated(what)
  const start = c.pos
  c.pos += n
  return c.buf.subarray(start, c.pos)
}
