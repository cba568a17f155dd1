// What the benchmarks share for the processes they start and the machine they
// run on: a child process spoken to in JSON lines over its stdin/stdout (the
// agent under test, the OTLP sink), stopped by PID; the machine's busy time
// from /proc/stat; per-thread CPU from /proc/self/task. Every wait is bounded.
//
// Child protocol: one JSON object per stdout line. {"type":"listening","port":N} (or "path":P)
// once, when it accepts connections; then one reply line per command line
// written to its stdin, in order (the reply's `type` names the command's
// answer). Lines that are not JSON are passed on to stderr.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

/** Child processes alive, so SIGINT and exit can stop them. */
const active = new Set<ChildProcess>()

/** Sends `signal` to the child by PID, if it is still there. */
export function killChild(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return
  try {
    process.kill(proc.pid, signal)
  } catch {
    // already gone
  }
}

/** Stops every child still alive (SIGTERM, or SIGKILL when `hard`). */
export function killAllChildren(hard: boolean): void {
  for (const p of active) killChild(p, hard ? 'SIGKILL' : 'SIGTERM')
}

/**
 * Installs SIGINT/SIGTERM/exit handlers that stop the children; returns the
 * function that removes them again.
 */
export function guardChildren(): () => void {
  const onSignal = (): void => {
    killAllChildren(false)
    process.exit(130)
  }
  const onExit = (): void => killAllChildren(true)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', onExit)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', onExit)
    killAllChildren(true)
  }
}

interface Waiter {
  type: string
  resolve: (msg: Record<string, unknown>) => void
  reject: (err: Error) => void
}

export interface StartOptions {
  /** For messages: "the agent", "the sink". */
  name: string
  script: string
  args?: readonly string[]
  nodeArgs?: readonly string[]
  timeoutMs?: number
}

/** A node child process speaking JSON lines (see the top of this file). */
export class JsonLineChild {
  private readonly waiters: Waiter[] = []
  private exited = false
  readonly exit: Promise<void>

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    /** The port from the "listening" line (0 for a unix socket). */
    readonly port: number,
    /** The unix socket path from the "listening" line, if it listens on one. */
    readonly path: string | null = null,
  ) {
    this.exit = new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve()
      else proc.once('exit', () => resolve())
    })
  }

  get pid(): number {
    return this.proc.pid ?? -1
  }

  static start(o: StartOptions): Promise<JsonLineChild> {
    const timeoutMs = o.timeoutMs ?? 15_000
    const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    active.add(proc)
    return new Promise((resolve, reject) => {
      let child: JsonLineChild | null = null
      const timer = setTimeout(() => {
        killChild(proc, 'SIGKILL')
        reject(new Error(`${o.name} did not start listening within ${timeoutMs} ms`))
      }, timeoutMs)
      proc.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      proc.once('exit', (code, signal) => {
        active.delete(proc)
        clearTimeout(timer)
        const err = new Error(`${o.name} exited (code ${code}, signal ${signal})`)
        if (child === null) reject(err)
        else child.onExit(err)
      })
      // The child's stdin closing (it exited) must not crash us with EPIPE.
      proc.stdin!.on('error', () => {})
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        let msg: Record<string, unknown>
        try {
          msg = JSON.parse(line) as Record<string, unknown>
        } catch {
          console.error(`${o.name}: ${line}`)
          return
        }
        if (msg.type === 'listening' && child === null && (typeof msg.port === 'number' || typeof msg.path === 'string')) {
          clearTimeout(timer)
          child = new JsonLineChild(o.name, proc, typeof msg.port === 'number' ? msg.port : 0, typeof msg.path === 'string' ? msg.path : null)
          resolve(child)
        } else if (child !== null) {
          const i = child.waiters.findIndex((w) => w.type === msg.type)
          if (i >= 0) child.waiters.splice(i, 1)[0]!.resolve(msg)
        }
      })
    })
  }

  /** Writes `command` on the child's stdin and waits for the first reply line of type `replyType`. */
  request<T>(command: string, replyType: string, timeoutMs = 5000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`))
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new Error(`no "${replyType}" reply from ${this.name} within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter: Waiter = {
        type: replyType,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as T)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.waiters.push(waiter)
      this.proc.stdin!.write(`${command}\n`)
    })
  }

  private onExit(err: Error): void {
    this.exited = true
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  /** Waits at most `timeoutMs` for the child to exit by itself; true if it did. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)))
    const r = await Promise.race([this.exit, late])
    clearTimeout(timer)
    return r !== 'late'
  }

  /** SIGTERM by PID, then SIGKILL if it is still there after `timeoutMs` (a CPU profile takes a moment to write). */
  async stop(timeoutMs: number): Promise<void> {
    if (this.exited || this.proc.exitCode !== null || this.proc.signalCode !== null) return
    killChild(this.proc, 'SIGTERM')
    if (!(await this.waitExit(timeoutMs))) {
      console.error(`${this.name} (pid ${this.pid}) ignored SIGTERM for ${timeoutMs} ms; killing it`)
      killChild(this.proc, 'SIGKILL')
      await this.waitExit(5000)
    }
  }
}

// ---- machine CPU -----------------------------------------------------------

export interface MachineCpu {
  /** user + nice + system + irq + softirq, all cores, microseconds. */
  busyUs: number
  /** irq + softirq alone (inside busyUs): on loopback, much of it is our own network traffic. */
  irqUs: number
  stealUs: number
}

let clockTicks = 0

/** USER_HZ, the unit of /proc/stat and /proc/<pid>/task/<tid>/stat. Asked once: it spawns a process. */
export function clockTicksPerSec(): number {
  if (clockTicks !== 0) return clockTicks
  try {
    clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100
  } catch {
    clockTicks = 100
  }
  return clockTicks
}

export function readMachineCpu(): MachineCpu | null {
  const ticks = clockTicksPerSec()
  let line: string | undefined
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
  } catch {
    return null
  }
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const f = line?.trim().split(/\s+/).slice(1).map(Number) ?? []
  if (f.length < 8) return null
  const us = 1e6 / ticks
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number]
  return { busyUs: (user + nice + system + irq + softirq) * us, irqUs: (irq + softirq) * us, stealUs: steal * us }
}

// ---- per-thread CPU --------------------------------------------------------

export interface ThreadCpu {
  tid: number
  /** /proc/self/task/<tid>/comm (Node 20 names every thread "node"). */
  comm: string
  userUs: number
  systemUs: number
}

/**
 * CPU time of every live thread of this process, from /proc/self/task/<tid>/stat
 * (utime and stime, in clock ticks: 10 ms resolution). Threads that exited are
 * not listed; their time stays in process.cpuUsage().
 */
export function readThreadCpu(ticksPerSec: number): ThreadCpu[] {
  const us = 1e6 / ticksPerSec
  const out: ThreadCpu[] = []
  let tids: string[]
  try {
    tids = readdirSync('/proc/self/task')
  } catch {
    return out
  }
  for (const t of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // f[0] is field 3 (state); utime and stime are fields 14 and 15.
      out.push({
        tid: Number(t),
        comm: readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim(),
        userUs: Number(f[11]) * us,
        systemUs: Number(f[12]) * us,
      })
    } catch {
      // the thread exited between readdir and read
    }
  }
  return out
}

/** VmRSS and VmHWM (peak RSS) of this process, bytes. */
export function readRss(): { rssBytes: number; peakRssBytes: number } {
  let rss = 0
  let hwm = 0
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const kb = (name: string): number => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
      return m ? Number(m[1]) * 1024 : 0
    }
    rss = kb('VmRSS')
    hwm = kb('VmHWM')
  } catch {
    // not Linux
  }
  if (rss === 0) rss = process.memoryUsage.rss()
  return { rssBytes: rss, peakRssBytes: Math.max(hwm, rss) }
}

// ---- small helpers for the reports -----------------------------------------

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a'

/**
 * The parent's side of the child protocol, in the child: calls `onCommand`
 * for each non-empty line on stdin, and `onEnd` when stdin closes (the
 * parent is gone: no orphan keeps a port and a core busy).
 */
export function onStdinCommands(onCommand: (cmd: string) => void, onEnd: () => void): void {
  process.stdin.setEncoding('utf8')
  let line = ''
  process.stdin.on('data', (chunk: string) => {
    line += chunk
    for (let nl = line.indexOf('\n'); nl >= 0; nl = line.indexOf('\n')) {
      const cmd = line.slice(0, nl).trim()
      line = line.slice(nl + 1)
      if (cmd !== '') onCommand(cmd)
    }
  })
  process.stdin.on('end', onEnd)
}
