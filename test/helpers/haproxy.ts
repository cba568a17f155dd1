// Runs the real HAProxy for end-to-end tests: finds the binary, starts it in
// the foreground with a config and environment, waits (bounded) until its
// frontend accepts connections, and stops exactly the process it started.
// With CI=true a missing HAProxy is a test failure, not a skip.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { Test } from 'tap'

const CANDIDATES = [process.env.HAPROXY_BIN, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']

export function findHaproxy(): string | null {
  for (const c of CANDIDATES) if (c && existsSync(c)) return c
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

/**
 * The HAProxy binary, or null after failing (CI) or skipping (elsewhere) the test.
 * Callers return at once on null.
 */
export function requireHaproxy(t: Test): string | null {
  const bin = findHaproxy()
  if (bin) return bin
  const why = 'HAProxy is not installed (sudo apt-get install -y haproxy)'
  if (process.env.CI === 'true') t.fail(`${why}; CI=true requires it`)
  else t.skip(why, () => {})
  return null
}

export function haproxyVersion(bin: string): string {
  return execFileSync(bin, ['-v'], { encoding: 'utf8' }).split('\n')[0] ?? ''
}

/** Whether `bin` is HAProxy major.minor or later ("HAProxy version 3.2.0-..."). */
export function haproxyAtLeast(bin: string, major: number, minor: number): boolean {
  const m = /version (\d+)\.(\d+)/.exec(haproxyVersion(bin))
  if (m === null) return false
  const [x, y] = [Number(m[1]), Number(m[2])]
  return x > major || (x === major && y >= minor)
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export async function waitForPort(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port })
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface HaproxyProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** Everything HAProxy wrote to stdout and stderr so far. */
  output(): string
  /** SIGTERM, then SIGKILL if still running after `ms`. Resolves once it has exited. */
  stop(ms?: number): Promise<void>
}

export async function startHaproxy(opts: {
  bin: string
  config: string | string[]
  env: Record<string, string>
  /** A port to wait for before returning. */
  waitPort?: number
  args?: string[]
  /** Working directory (relative paths in the configuration start there); default: this process's. */
  cwd?: string
}): Promise<HaproxyProcess> {
  const configs = Array.isArray(opts.config) ? opts.config : [opts.config]
  const args = ['-db', ...configs.flatMap((c) => ['-f', c]), ...(opts.args ?? [])]
  const child = spawn(opts.bin, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let done = false
  void exited.then(() => (done = true))
  const proc: HaproxyProcess = {
    pid: child.pid!,
    child,
    output: () => out,
    async stop(ms = 3000) {
      if (done) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), ms)
      await exited
      clearTimeout(timer)
    },
  }
  if (opts.waitPort !== undefined) {
    try {
      await Promise.race([
        waitForPort(opts.waitPort),
        exited.then(() => {
          throw new Error(`haproxy exited at start:\n${out}`)
        }),
      ])
    } catch (e) {
      await proc.stop()
      throw e
    }
  }
  return proc
}
