// Syslog over TCP (RFC 6587): the records of one stream, each handed over
// whole. HAProxy's ring forwarders frame them either way, per the
// `log-proto` of the ring's server line:
//   octet-count   `<length> <record>` (section 3.4.1), no terminator;
//   legacy        `<record>\n` (non-transparent framing, section 3.4.2), the default.
// Each frame says which by its first byte (a digit or `<`), so both work on
// one listener. Bounded: a record longer than maxRecord is skipped without
// being buffered (octet counting says how much to skip; a legacy one is
// dropped up to its LF), and nothing else is kept between chunks than the
// part of one record. A stream that is neither is unreadable from there on:
// the caller closes it (HAProxy reconnects).

export type FrameError = 'too_large' | 'bad_frame'

export class SyslogFrames {
  private pending: Buffer | null = null
  /** Bytes of an oversized octet-counted record still to skip. */
  private skip = 0
  /** A legacy record grew past maxRecord: drop up to its LF. */
  private skipLine = false
  private broken = false

  constructor(
    private readonly maxRecord: number,
    private readonly onRecord: (record: Buffer) => void,
    private readonly onError: (reason: FrameError) => void,
  ) {}

  /** Feeds a chunk; false once the stream is unreadable (close it). */
  push(chunk: Buffer): boolean {
    if (this.broken) return false
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    this.pending = null
    let i = 0
    while (i < buf.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - i)
        this.skip -= n
        i += n
        continue
      }
      if (this.skipLine) {
        const lf = buf.indexOf(10, i)
        if (lf < 0) return true
        this.skipLine = false
        i = lf + 1
        continue
      }
      const c = buf[i]!
      if (c >= 49 && c <= 57) {
        // octet-count: up to 9 digits, then one space
        const sp = buf.indexOf(32, i)
        const digitsEnd = sp < 0 ? buf.length : sp
        for (let j = i; j < digitsEnd; j++) {
          const d = buf[j]!
          if (d < 48 || d > 57 || j - i >= 9) return this.fail()
        }
        if (sp < 0) break // the length is not whole yet
        const len = Number(buf.toString('latin1', i, sp))
        const body = sp + 1
        if (len > this.maxRecord) {
          this.onError('too_large')
          this.skip = len
          i = body
          continue
        }
        if (buf.length - body < len) break // the record is not whole yet
        this.onRecord(buf.subarray(body, body + len))
        i = body + len
      } else if (c === 60 /* < */) {
        const lf = buf.indexOf(10, i)
        if (lf < 0) {
          if (buf.length - i > this.maxRecord) {
            this.onError('too_large')
            this.skipLine = true
            return true
          }
          break
        }
        if (lf - i > this.maxRecord) this.onError('too_large')
        else this.onRecord(buf.subarray(i, lf))
        i = lf + 1
      } else if (c === 10 || c === 13) {
        i++ // stray line ends between legacy records
      } else {
        return this.fail()
      }
    }
    if (i < buf.length) {
      // A copy: the rest of a big chunk must not keep the whole chunk alive.
      buf = buf.subarray(i)
      this.pending = Buffer.from(buf)
    }
    return true
  }

  /** The stream ended: true when a record was cut short. */
  end(): boolean {
    const cut = (this.pending !== null && this.pending.length > 0) || this.skip > 0
    this.pending = null
    this.skip = 0
    return cut
  }

  private fail(): false {
    this.broken = true
    this.pending = null
    this.onError('bad_frame')
    return false
  }
}
