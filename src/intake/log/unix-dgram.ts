// Unix datagram sockets, which Node.js's `dgram` does not have. They come
// from `node-unix-socket`, an optional dependency: N-API (one binary for
// every Node.js version) and prebuilt per platform in the npm registry, so
// `npm install -g` needs no compiler. Where npm could not install it (a
// platform it has no binary for, an install with --omit=optional), asking
// for a unix log intake stops the start with a line that says what to do.

import { createRequire } from 'node:module'

export interface UnixDgramSocket {
  bind(path: string): void
  sendTo(buf: Buffer, offset: number, length: number, path: string, cb?: (err: Error | undefined) => void): void
  setRecvBufferSize(size: number): void
  getRecvBufferSize(): number
  close(): void
  on(event: 'data', listener: (buf: Buffer) => void): this
  on(event: 'error', listener: (err: Error) => void): this
}

type Ctor = new () => UnixDgramSocket

let ctor: Ctor | null | undefined

/** The socket class, or null when the optional package is not installed (or does not load here). */
export function unixDgram(): Ctor | null {
  if (ctor === undefined) {
    try {
      ctor = (createRequire(import.meta.url)('node-unix-socket') as { DgramSocket: Ctor }).DgramSocket
    } catch {
      ctor = null
    }
  }
  return ctor
}

export const UNIX_DGRAM_MISSING =
  'unix datagram sockets need the optional package node-unix-socket, which is not installed for this platform ' +
  `(${process.platform}-${process.arch}): reinstall spoa-tracer without --omit=optional, or listen on udp://127.0.0.1:PORT instead`

/**
 * Whether a process receives on a unix datagram socket's path: a datagram
 * sent there arrives (alive) or is refused (a file left behind by a crash).
 * An empty datagram: the intake ignores those.
 */
export function unixDgramAlive(Socket: Ctor, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = new Socket()
    probe.on('error', () => {})
    probe.sendTo(Buffer.alloc(0), 0, 0, path, (err) => {
      probe.close()
      resolve(err === undefined || err === null)
    })
  })
}
