// A TCP relay for end-to-end tests: listens on 127.0.0.1 and forwards every
// connection to a target, byte for byte. pauseAfter(n) lets each connection
// forward n more bytes from its client, then stops reading from it (so the
// client's socket buffers fill and its writes block, as with an agent that
// stalls in the middle of a large frame, on whichever connection carries
// it); resume() lets everything flow again.

import { connect, createServer, type Server, type Socket } from 'node:net'

export interface TcpRelay {
  port: number
  /** Bytes forwarded from clients to the target so far. */
  readonly forwarded: number
  /** Each connection, existing or new, stops reading from its client after `bytes` more bytes. */
  pauseAfter(bytes: number): void
  /** Connections stopped by pauseAfter() so far. */
  readonly paused: number
  resume(): void
  close(): Promise<void>
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const pairs = new Set<[Socket, Socket]>()
  /** Bytes each client may still send before it is paused; null when not armed. */
  let budget: Map<Socket, number> | null = null
  let allowance = 0
  let paused = 0
  let forwarded = 0
  const server: Server = createServer((client) => {
    const upstream = connect(target)
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    client.on('data', (d) => {
      forwarded += d.length
      upstream.write(d)
      if (budget === null) return
      const left = (budget.get(client) ?? allowance) - d.length
      budget.set(client, left)
      if (left <= 0) {
        client.pause()
        paused++
      }
    })
    upstream.pipe(client)
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', end)
    upstream.on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    get forwarded() {
      return forwarded
    },
    get paused() {
      return paused
    },
    pauseAfter(bytes: number) {
      allowance = bytes
      budget = new Map()
    },
    resume() {
      budget = null
      for (const [client] of pairs) client.resume()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy()
          b.destroy()
        }
        server.close(() => resolve())
      }),
  }
}
