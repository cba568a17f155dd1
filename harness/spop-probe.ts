// A raw SPOP peer for hostile-input tests: writes arbitrary bytes (in chunks,
// then optionally a half-close or a reset) and collects everything the agent
// sends until it closes. Replies are decoded only at the end, so a malformed
// reply is reported as a result rather than thrown inside a socket handler
// (FakeHaproxy would throw there). Every wait is bounded.

import type { ListenAddress } from '../src/agent/index.js'
import { decodeFrame, type Frame, FrameReader } from '../src/spop/index.js'
import { connectRaw } from './spop-client.js'

export interface ProbeOptions {
  /** After the last chunk: half-close ('end', the default), reset, or nothing. */
  after?: 'end' | 'reset' | 'none'
  /** How long to wait for the agent to close; default 2000 ms. */
  timeoutMs?: number
}

export interface ProbeResult {
  /** What the agent sent, decoded. */
  frames: Frame[]
  /** What the agent sent, as bytes. */
  raw: Buffer
  /** Set when the agent's bytes do not decode into whole frames. */
  decodeError: string | null
  /** The connection closed within the bound. */
  closed: boolean
  /** Milliseconds from the first write to the close (or to the timeout). */
  elapsedMs: number
}

/** Decodes a byte stream from the agent into frames; a trailing partial frame is an error. */
export function decodeReply(raw: Buffer): { frames: Frame[]; decodeError: string | null } {
  const frames: Frame[] = []
  const reader = new FrameReader(1 << 24)
  try {
    reader.push(raw, (body) => frames.push(decodeFrame(body)))
    if (reader.midFrame) return { frames, decodeError: `a partial frame of ${reader.buffered} bytes at the end` }
    return { frames, decodeError: null }
  } catch (err) {
    return { frames, decodeError: String(err) }
  }
}

export async function probe(addr: ListenAddress, chunks: readonly Buffer[], opts: ProbeOptions = {}): Promise<ProbeResult> {
  const socket = await connectRaw(addr)
  const got: Buffer[] = []
  socket.on('data', (c: Buffer) => got.push(c))
  socket.on('error', () => {}) // a reset from the agent is an outcome, read from `closed`
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)))
  const started = performance.now()
  for (const c of chunks) if (c.length > 0) socket.write(c)
  const after = opts.after ?? 'end'
  if (after === 'end') socket.end()
  else if (after === 'reset') socket.resetAndDestroy()
  let timer: NodeJS.Timeout | undefined
  const ok = await Promise.race([
    closed,
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), opts.timeoutMs ?? 2000))),
  ])
  clearTimeout(timer)
  const elapsedMs = performance.now() - started
  if (!ok) socket.destroy()
  const raw = Buffer.concat(got)
  return { ...decodeReply(raw), raw, closed: ok, elapsedMs }
}
