// Ports on 127.0.0.1 for tests and benchmarks. A server of ours binds port 0
// and reports the port it got: nothing can take it in between. A process that
// cannot report its port (HAProxy, an agent given as a command) gets one from
// freePort(), which binds port 0 and releases it: another process may bind it
// before ours does, so such a start goes through onFreePort(), which tries
// again with another port when the bind fails with "address in use".

import { connect, createServer } from 'node:net'
import { sleep } from './wait.js'

/** A TCP port that was free on 127.0.0.1 a moment ago (see the top of this file for the race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** Whether an error (or the output quoted in its message) says a bind found its address taken. */
export function isAddressInUse(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null
  return e?.code === 'EADDRINUSE' || /EADDRINUSE|Address already in use/i.test(String(e?.message ?? err))
}

/**
 * Runs `start` with a free port; when it fails because the port was taken
 * meanwhile, again with another one (up to `attempts` times).
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    const port = await freePort()
    try {
      return await start(port)
    } catch (err) {
      if (i >= attempts || !isAddressInUse(err)) throw err
    }
  }
}

/**
 * Resolves once 127.0.0.1:port (or the unix socket at that path) accepts a
 * connection; rejects after `ms`, or as soon as `alive()` turns false.
 */
export async function waitForPort(port: number | string, ms = 10_000, alive: () => boolean = () => true, what = 'it'): Promise<void> {
  const deadline = Date.now() + ms
  const where = typeof port === 'string' ? port : `127.0.0.1:${port}`
  for (;;) {
    if (await accepts(port)) return
    if (!alive()) throw new Error(`${what} exited before listening on ${where}`)
    if (Date.now() > deadline) throw new Error(`${what}: nothing listening on ${where} after ${ms} ms`)
    await sleep(50)
  }
}

function accepts(port: number | string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = typeof port === 'string' ? connect({ path: port }) : connect({ host: '127.0.0.1', port })
    s.setTimeout(1000, () => {
      s.destroy()
      resolve(false)
    })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
