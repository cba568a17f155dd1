// UTF-8 decoding of a byte range. Buffer#toString('utf8', start, end) checks
// its arguments and dispatches on the encoding on every call; the internal
// utf8Slice it ends up in skips both, which shows on the NOTIFY hot path
// (docs/BENCHMARKS.md, history: the bare agent). Guarded, in case a Node.js
// release drops it.

type Slicer = (buf: Buffer, start: number, end: number) => string

const proto = Buffer.prototype as unknown as { utf8Slice?: (start: number, end: number) => string }

export const utf8: Slicer =
  typeof proto.utf8Slice === 'function'
    ? (buf, start, end) => (buf as unknown as { utf8Slice(start: number, end: number): string }).utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end)

/**
 * `s` cut to at most `maxBytes` bytes of UTF-8, never inside a character
 * (a code point that does not fit whole is left out).
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (s.length <= maxBytes / 3 || Buffer.byteLength(s) <= maxBytes) return s
  const b = Buffer.from(s, 'utf8')
  let cut = maxBytes
  // A continuation byte (10xxxxxx) at the cut means a character straddles it.
  while (cut > 0 && (b[cut]! & 0xc0) === 0x80) cut--
  return b.toString('utf8', 0, cut)
}
