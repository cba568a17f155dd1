// HAProxy for the benchmarks (bench/haproxy-wrk.ts): finding the binary,
// starting it in the foreground (-db: one process, its PID is the one to
// measure and to stop), and its stats socket: `get var`, `show stat`. Every
// wait is bounded.

import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { type Proc, sleep, spawnTracked, waitForPort } from './proc.js'

const CANDIDATES = [process.env.HAPROXY_BIN, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']

/** HAPROXY_BIN, the usual places, then $PATH; null when there is none. */
export function findHaproxy(): string | null {
  for (const c of CANDIDATES) if (c && existsSync(c)) return c
  return which('haproxy')
}

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

/**
 * Starts `haproxy -db -f <config>` with `env`, and waits (bounded) until
 * 127.0.0.1:`port` accepts connections. Stops it again when that fails.
 */
export async function startHaproxy(o: {
  name: string
  bin: string
  config: string
  env: Record<string, string>
  port: number
  timeoutMs?: number
  /** Working directory (HAProxy's OpenTracing filter opens its plugin relative to it). */
  cwd?: string
}): Promise<Proc> {
  const p = spawnTracked({ name: o.name, command: o.bin, args: ['-db', '-f', o.config], env: o.env, ...(o.cwd !== undefined ? { cwd: o.cwd } : {}) })
  try {
    await waitForPort(o.port, o.timeoutMs ?? 10_000, () => !p.hasExited(), o.name)
  } catch (err) {
    await p.stop(3000)
    throw new Error(`${(err as Error).message}\n${p.output()}`)
  }
  return p
}

/** Sends one command line (several may be joined with ';') to a stats socket; resolves with the whole answer. */
export function cli(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: socketPath })
    let out = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no answer on ${socketPath} to "${command}" within ${timeoutMs} ms`))
    }, timeoutMs)
    s.setEncoding('utf8')
    s.on('data', (d: string) => (out += d))
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    s.once('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
    s.once('connect', () => s.write(`${command}\n`))
  })
}

/** `get var` of integer process variables: name (without "proc.") -> value; missing ones are absent. */
export async function getProcVars(socketPath: string, names: readonly string[]): Promise<Record<string, number>> {
  const out = await cli(socketPath, names.map((n) => `get var proc.${n}`).join(';'))
  const vars: Record<string, number> = {}
  for (const m of out.matchAll(/^proc\.(\S+): type=\w+ value=<(-?\d+)>/gm)) vars[m[1]!] = Number(m[2])
  return vars
}

/** `show stat` as rows of named columns. */
export async function showStat(socketPath: string): Promise<Array<Record<string, string>>> {
  const lines = (await cli(socketPath, 'show stat')).split('\n').filter((l) => l.trim() !== '')
  const header = lines[0]?.replace(/^#\s*/, '').split(',') ?? []
  return lines.slice(1).map((l) => {
    const cells = l.split(',')
    const row: Record<string, string> = {}
    header.forEach((h, i) => (row[h] = cells[i] ?? ''))
    return row
  })
}

/** Waits (bounded) until server `px/sv` is UP in `show stat`; returns its row. */
export async function waitServerUp(socketPath: string, px: string, sv: string, ms: number): Promise<Record<string, string>> {
  const deadline = Date.now() + ms
  let last: Record<string, string> | undefined
  for (;;) {
    last = (await showStat(socketPath)).find((r) => r.pxname === px && r.svname === sv)
    if (last?.status?.startsWith('UP')) return last
    if (Date.now() > deadline) {
      throw new Error(
        `server ${px}/${sv} not UP after ${ms} ms (status ${last?.status ?? 'absent'}, check ${last?.check_status ?? '?'} ${last?.check_desc ?? ''})`,
      )
    }
    await sleep(100)
  }
}
