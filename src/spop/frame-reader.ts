// Reassembles whole frames from TCP chunks of any size and any split.
//
// Only the 4-byte big-endian length prefix is interpreted here. The length is
// checked against the negotiated max-frame-size BEFORE anything is buffered,
// so a hostile or confused peer (a 4 GiB length, an HTTP request on the SPOP
// port) costs nothing but an error. Frames wholly inside a chunk are handed
// out as views of it (no copy); a frame that straddles chunks is collected in
// one buffer of exactly its size.

import { LENGTH_PREFIX_SIZE, MIN_FRAME_BODY, Status } from './constants.js'
import { invalid, SpopError } from './errors.js'

export type FrameCallback = (body: Buffer) => void

export class FrameReader {
  /** Frames longer than this (length prefix excluded) are refused. Lowered after the HELLO. */
  maxFrameSize: number
  private readonly head = Buffer.allocUnsafe(LENGTH_PREFIX_SIZE)
  private headLen = 0
  private body: Buffer | null = null
  private bodyLen = 0
  private stopped = false

  constructor(maxFrameSize: number) {
    this.maxFrameSize = maxFrameSize
  }

  /** True while part of a frame (or of its length) has arrived but not the rest. */
  get midFrame(): boolean {
    return this.headLen > 0 || this.body !== null
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.headLen + this.bodyLen
  }

  /** Drops any later bytes, including the rest of the current chunk. */
  stop(): void {
    this.stopped = true
    this.body = null
    this.headLen = this.bodyLen = 0
  }

  /**
   * Feeds one chunk; calls `onFrame` synchronously with each complete frame
   * body. Throws SpopError (3: too big, 4: shorter than a frame header).
   */
  push(chunk: Buffer, onFrame: FrameCallback): void {
    const n = chunk.length
    let pos = 0
    while (pos < n && !this.stopped) {
      const body = this.body
      if (body !== null) {
        const take = Math.min(body.length - this.bodyLen, n - pos)
        chunk.copy(body, this.bodyLen, pos, pos + take)
        this.bodyLen += take
        pos += take
        if (this.bodyLen === body.length) {
          this.body = null
          this.bodyLen = 0
          onFrame(body)
        }
        continue
      }
      let len: number
      if (this.headLen === 0 && n - pos >= LENGTH_PREFIX_SIZE) {
        len = chunk.readUInt32BE(pos)
        pos += LENGTH_PREFIX_SIZE
      } else {
        const take = Math.min(LENGTH_PREFIX_SIZE - this.headLen, n - pos)
        chunk.copy(this.head, this.headLen, pos, pos + take)
        this.headLen += take
        pos += take
        if (this.headLen < LENGTH_PREFIX_SIZE) return
        this.headLen = 0
        len = this.head.readUInt32BE(0)
      }
      this.checkLength(len)
      if (n - pos >= len) {
        onFrame(chunk.subarray(pos, pos + len))
        pos += len
      } else {
        this.body = Buffer.allocUnsafe(len)
        this.bodyLen = 0
      }
    }
  }

  private checkLength(len: number): void {
    if (len > this.maxFrameSize) {
      this.stop()
      throw new SpopError(
        'ERR_SPOP_TOO_BIG',
        Status.TOO_BIG,
        `frame is too big: ${len} bytes, max-frame-size is ${this.maxFrameSize}`,
      )
    }
    if (len < MIN_FRAME_BODY) {
      this.stop()
      throw invalid(`frame of ${len} bytes is shorter than a frame header`)
    }
  }
}
