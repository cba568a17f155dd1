// The real HAProxy, for end-to-end tests and the wrk benchmark: finding the
// binary and its version, and starting it in the foreground (-db: one
// process, or -W master-worker) with configurations and an environment.
// Every instance gets a stats socket of its own (an extra `global` section in
// a file of its own): HAProxy answering on it means every listener is bound,
// which is the readiness signal, and it is where the harness reads server
// states and counters (haproxy-stats.ts). Stops exactly the process it
// started; every wait is bounded.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli } from './haproxy-stats.js'
import { isAddressInUse, onFreePort } from './ports.js'
import { type Proc, spawnTracked } from './process.js'
import { waitUntil } from './wait.js'

const CANDIDATES = [process.env.HAPROXY_BIN, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']

/** HAPROXY_BIN, the usual places, then $PATH; null when there is none. */
export function findHaproxy(): string | null {
  for (const c of CANDIDATES) if (c && existsSync(c)) return c
  return which('haproxy')
}

/** A command's path on $PATH, or null. */
export function which(name: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8', timeout: 2000 }).trim() || null
  } catch {
    return null
  }
}

export function haproxyVersion(bin: string): string {
  try {
    return execFileSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 }).split('\n')[0] ?? ''
  } catch {
    return 'unknown version'
  }
}

/** Whether `bin` is HAProxy major.minor or later ("HAProxy version 3.2.0-..."). */
export function haproxyAtLeast(bin: string, major: number, minor: number): boolean {
  const m = /version (\d+)\.(\d+)/.exec(haproxyVersion(bin))
  if (m === null) return false
  const [x, y] = [Number(m[1]), Number(m[2])]
  return x > major || (x === major && y >= minor)
}

export interface HaproxyOptions {
  bin: string
  config: string | readonly string[]
  env?: Record<string, string>
  /** More command-line arguments (e.g. -W). */
  args?: readonly string[]
  /** Working directory (relative paths in the configuration start there); default: this process's. */
  cwd?: string
  /** For messages; default "HAProxy". */
  name?: string
  /**
   * The environment that binds the frontend to a port, e.g. HAPROXY_BIND set
   * to 127.0.0.1:<port>: called with a free port, and again with another one
   * when that one was taken meanwhile. The port is `port` in the result.
   */
  bind?: (port: number) => Record<string, string>
  /** How long it may take to answer on its stats socket; default 10 s. */
  timeoutMs?: number
}

export interface Haproxy extends Proc {
  /** Its stats socket (haproxy-stats.ts). */
  readonly stats: string
  /** The port given to `bind`, or 0. */
  readonly port: number
}

/** Starts HAProxy and resolves once it answers on its stats socket. */
export function startHaproxy(o: HaproxyOptions): Promise<Haproxy> {
  if (o.bind === undefined) return startOnce(o, 0)
  return onFreePort((port) => startOnce(o, port))
}

async function startOnce(o: HaproxyOptions, port: number): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-haproxy-'))
  const stats = join(dir, 'stats.sock')
  const statsCfg = join(dir, 'stats.cfg')
  writeFileSync(statsCfg, `global\n    stats socket "${stats}" mode 600 level admin\n`)
  const configs = [...(typeof o.config === 'string' ? [o.config] : o.config), statsCfg]
  const env = { ...o.env, ...o.bind?.(port) }
  const name = o.name ?? 'HAProxy'
  const p = spawnTracked({
    name,
    command: o.bin,
    args: ['-db', ...configs.flatMap((c) => ['-f', c]), ...(o.args ?? [])],
    env,
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
  })
  const stop = p.stop
  const h: Haproxy = {
    ...p,
    stats,
    port,
    async stop(ms = 5000, sig?: NodeJS.Signals) {
      await stop(ms, sig)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    const ms = o.timeoutMs ?? 10_000
    await waitUntil(
      async () => {
        if (p.hasExited()) throw new Error(`${name} exited at start:\n${p.tail()}`)
        return cli(stats, 'show info', 1000).then((info) => info.includes('Pid:'), () => false)
      },
      ms,
      `${name}: no answer on its stats socket`,
    )
  } catch (err) {
    await h.stop(3000)
    // An address taken meanwhile (onFreePort tries another port) says so in HAProxy's output.
    if (isAddressInUse(p.output())) throw Object.assign(new Error(`${name}: address in use:\n${p.tail()}`), { code: 'EADDRINUSE' })
    throw err instanceof Error && err.message.includes(p.tail()) ? err : new Error(`${(err as Error).message}\n${p.tail()}`)
  }
  return h
}
