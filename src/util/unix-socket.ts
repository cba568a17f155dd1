// Unix socket files left behind. A listener that crashed leaves its socket
// file, and the next listen() on that path fails with EADDRINUSE. The file
// is removed only if nothing answers on it: two processes must not steal
// each other's socket.

import { existsSync, lstatSync, unlinkSync } from 'node:fs'
import { connect } from 'node:net'

export async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return
  if (!lstatSync(path).isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket`), { code: 'EEXIST' })
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect({ path })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
  if (alive) throw Object.assign(new Error(`another process is listening on ${path}`), { code: 'EADDRINUSE' })
  unlinkSync(path)
}
