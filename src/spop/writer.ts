// A growable output buffer for encoding frames. One module-level writer is
// shared by all encoders: encoding is synchronous, so it is never re-entered,
// and the hot path then allocates only the exact-size frame it returns.

import { type Uint64, varintLength, writeVarint } from './varint.js'

export class Writer {
  buf: Buffer
  pos = 0

  constructor(size = 16384) {
    this.buf = Buffer.allocUnsafe(size)
  }

  reset(): this {
    this.pos = 0
    return this
  }

  /** Makes room for `n` more bytes, growing by doubling. */
  ensure(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  u8(v: number): void {
    this.ensure(1)
    this.buf[this.pos++] = v
  }

  u32(v: number): void {
    this.ensure(4)
    this.buf.writeUInt32BE(v >>> 0, this.pos)
    this.pos += 4
  }

  varint(v: Uint64): void {
    this.ensure(10)
    this.pos = writeVarint(this.buf, this.pos, v)
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** A raw string: varint byte length, then UTF-8 bytes. */
  rawString(s: string): void {
    const len = Buffer.byteLength(s)
    this.ensure(len + varintLength(len))
    this.pos = writeVarint(this.buf, this.pos, len)
    this.pos += this.buf.write(s, this.pos, len, 'utf8')
  }

  /** Length-prefixed bytes. */
  lengthPrefixed(b: Uint8Array): void {
    this.varint(b.length)
    this.bytes(b)
  }

  /** A copy of what was written, detached from the shared buffer. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.pos)
    this.buf.copy(out, 0, 0, this.pos)
    return out
  }
}

/** The writer all synchronous encoders share. */
export const sharedWriter = new Writer()
