// Processes that are not Node children speaking JSON lines (HAProxy, wrk, any
// SPOE agent given as a shell command), for bench/haproxy-wrk.ts: started,
// tracked so that an error, SIGINT or exit stops them (by PID, or by process
// group for a shell command), stopped with a bounded wait; and their CPU and
// memory read from /proc/<pid>, so that processes we did not write can be
// measured the same way as ours. Every wait is bounded.

import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { clockTicksPerSec } from './child.js'

// ---- tracking --------------------------------------------------------------

interface Tracked {
  proc: ChildProcess
  /** Spawned detached: signal the process group -pid. */
  group: boolean
}

const tracked = new Set<Tracked>()
let exitHook = false

function signal(t: Tracked, sig: NodeJS.Signals): void {
  const pid = t.proc.pid
  if (pid === undefined) return
  if (!t.group && (t.proc.exitCode !== null || t.proc.signalCode !== null)) return
  try {
    process.kill(t.group ? -pid : pid, sig)
  } catch {
    // already gone
  }
}

/** SIGKILLs every tracked process still running (the process exits, or gives up). */
export function killTracked(): void {
  for (const t of tracked) signal(t, 'SIGKILL')
  tracked.clear()
}

function installExitHook(): void {
  if (exitHook) return
  exitHook = true
  // Runs on process.exit() too, which guardChildren's SIGINT/SIGTERM handler calls.
  process.on('exit', killTracked)
}

export interface Proc {
  readonly name: string
  readonly proc: ChildProcess
  readonly pid: number
  /** Resolves when it has exited. */
  readonly exited: Promise<void>
  hasExited(): boolean
  /** The last `max` characters of its stdout and stderr. */
  output(max?: number): string
  /** SIGTERM (to the group when detached), then SIGKILL after `ms`; resolves once it has exited. */
  stop(ms?: number, sig?: NodeJS.Signals): Promise<void>
}

export interface SpawnTracked {
  name: string
  command: string
  args: readonly string[]
  env?: Record<string, string>
  cwd?: string
  /** Own process group (a shell command and whatever it starts): stopped as a group. */
  group?: boolean
  /** Keep this much of its output, characters (default 64 KiB). */
  keep?: number
}

/** Spawns a process, keeps the tail of its output, and stops it on exit/SIGINT. */
export function spawnTracked(o: SpawnTracked): Proc {
  installExitHook()
  const opts: SpawnOptions = {
    env: { ...process.env, ...(o.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: o.group === true,
  }
  if (o.cwd !== undefined) opts.cwd = o.cwd
  const proc = spawn(o.command, [...o.args], opts)
  const t: Tracked = { proc, group: o.group === true }
  tracked.add(t)
  const keep = o.keep ?? 65_536
  let out = ''
  const onData = (d: Buffer): void => {
    out += d.toString()
    if (out.length > 2 * keep) out = out.slice(-keep)
  }
  proc.stdout!.on('data', onData)
  proc.stderr!.on('data', onData)
  let done = false
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      done = true
      if (!t.group) tracked.delete(t)
      resolve()
    })
    proc.once('error', (err) => {
      out += `\n${o.name}: ${err.message}`
      done = true
      tracked.delete(t)
      resolve()
    })
  })
  return {
    name: o.name,
    proc,
    pid: proc.pid ?? -1,
    exited,
    hasExited: () => done,
    output: (max = 4000) => out.slice(-max),
    async stop(ms = 5000, sig: NodeJS.Signals = 'SIGTERM') {
      if (done && !t.group) return
      signal(t, sig)
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)))
      if ((await Promise.race([exited, late])) === 'late') {
        console.error(`${o.name} (pid ${proc.pid}) still running ${ms} ms after ${sig}; killing it`)
        signal(t, 'SIGKILL')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))])
      }
      clearTimeout(timer)
      // The group's other members (a shell's children) get the same treatment.
      if (t.group) {
        if (groupPids(proc.pid ?? -1).length > 0) {
          signal(t, 'SIGKILL')
        }
        tracked.delete(t)
      }
    },
  }
}

// ---- waiting for ports -----------------------------------------------------

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Resolves once 127.0.0.1:port (or the unix socket at that path) accepts a
 * connection; rejects after `ms`, or when `alive()` turns false.
 */
export async function waitForPort(port: number | string, ms: number, alive: () => boolean = () => true, what = 'it'): Promise<void> {
  const deadline = Date.now() + ms
  const where = typeof port === 'string' ? port : `127.0.0.1:${port}`
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
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
    if (ok) return
    if (!alive()) throw new Error(`${what} exited before listening on ${where}`)
    if (Date.now() > deadline) throw new Error(`${what}: nothing listening on ${where} after ${ms} ms`)
    await sleep(50)
  }
}

// ---- /proc -----------------------------------------------------------------

/** user + system CPU of a process (all its threads), µs; NaN if it is gone. 10 ms resolution. */
export function procCpuUs(pid: number): number {
  const f = statFields(pid)
  if (f === null) return NaN
  // f[0] is field 3 (state); utime and stime are fields 14 and 15.
  return ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicksPerSec()
}

/** CPU of this process's children that have exited and been waited for (cutime + cstime), µs. */
export function childrenCpuUs(): number {
  const f = statFields(process.pid)
  if (f === null) return NaN
  return ((Number(f[13]) + Number(f[14])) * 1e6) / clockTicksPerSec()
}

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // pid (comm) state ...: comm may hold spaces and parentheses, so split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** Processes of process group `pgid` (a detached shell command and what it started). */
export function groupPids(pgid: number): number[] {
  if (pgid <= 0) return []
  const out: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    const f = statFields(Number(e))
    // f[2] is field 5 (pgrp).
    if (f !== null && Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(e))
  }
  return out
}

export interface Mem {
  rssBytes: number
  /** VmHWM: the process's largest RSS so far. */
  peakRssBytes: number
}

/** VmRSS and VmHWM of a process; zeros if it is gone. */
export function procMem(pid: number): Mem {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name: string): number => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
      return m ? Number(m[1]) * 1024 : 0
    }
    return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') }
  } catch {
    return { rssBytes: 0, peakRssBytes: 0 }
  }
}

/** CPU (µs) and memory of a whole process group: sums over its live members. */
export function groupUsage(pgid: number): { cpuUs: number; mem: Mem; pids: number[] } {
  const pids = groupPids(pgid)
  let cpuUs = 0
  let rss = 0
  let peak = 0
  for (const p of pids) {
    const c = procCpuUs(p)
    if (Number.isFinite(c)) cpuUs += c
    const m = procMem(p)
    rss += m.rssBytes
    peak += m.peakRssBytes
  }
  return { cpuUs, mem: { rssBytes: rss, peakRssBytes: peak }, pids }
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, release it). */
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
