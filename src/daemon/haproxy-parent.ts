// When HAProxy launches the agent (master-worker `program` section), the
// agent must follow HAProxy's lifecycle, which it can only observe:
//
// - HAProxy 2.x before 3.1 passes program PIDs to `-sf` on every reload, so
//   a program receives SIGUSR1 (soft-stop) whenever HAProxy reloads, and
//   also when the master itself soft-stops (upstream 1fead6c0c, 3.1 only).
//   The two cases differ in one way: after a reload new HAProxy workers run
//   beside the agent; after a soft-stop, once the old workers have finished,
//   none do. So SIGUSR1 means "stop once no HAProxy worker is left".
// - If the master dies, the agent is orphaned: nobody will ever stop it and
//   it holds the port the next HAProxy's agent needs. It stops.
//
// Linux only (/proc); elsewhere the checks say "unknown" and nothing happens.

import { readdirSync, readFileSync } from 'node:fs'

/** Where the checks look: this process, its parent, and the /proc that describes them (tests give their own). */
export interface ProcView {
  /** The proc filesystem: `${root}/${pid}/stat`. */
  readonly root: string
  readonly pid: number
  /** Read at each check: it changes when the parent dies and the process is re-parented. */
  ppid(): number
}

const SELF: ProcView = { root: '/proc', pid: process.pid, ppid: () => process.ppid }

/** The command name and parent of a process, from /proc/PID/stat; null if it cannot be read. */
export function procStat(pid: number | string, root = '/proc'): { comm: string; ppid: number } | null {
  let s: string
  try {
    s = readFileSync(`${root}/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // "PID (COMM) STATE PPID ...": COMM may itself hold spaces and parentheses, so it ends at the last ')'.
  const open = s.indexOf('(')
  const close = s.lastIndexOf(')')
  if (open < 0 || close < open) return null
  const ppid = Number(s.slice(close + 2).split(' ')[1])
  return Number.isInteger(ppid) ? { comm: s.slice(open + 1, close), ppid } : null
}

/** True when our parent process is HAProxy (its master, in master-worker mode). */
export function parentIsHaproxy(proc: ProcView = SELF): boolean {
  return procStat(proc.ppid(), proc.root)?.comm === 'haproxy'
}

/** HAProxy processes sharing our parent (its workers), or -1 if /proc cannot tell. */
export function siblingHaproxyWorkers(proc: ProcView = SELF): number {
  let entries: string[]
  try {
    entries = readdirSync(proc.root)
  } catch {
    return -1
  }
  const parent = proc.ppid()
  let n = 0
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === proc.pid) continue
    const s = procStat(e, proc.root)
    if (s !== null && s.ppid === parent && s.comm === 'haproxy') n++
  }
  return n
}

export interface ParentWatch {
  /** HAProxy sent SIGUSR1: stop once no worker is left. */
  softStop(): void
  stop(): void
}

/**
 * Polls (cheaply, every `everyMs`) for the two conditions that end an agent
 * launched by HAProxy; calls `onGone` with the reason, once.
 */
export function watchHaproxyParent(onGone: (reason: string) => void, everyMs = 500, proc: ProcView = SELF): ParentWatch {
  const parent = proc.ppid()
  let softStopping = false
  let done = false
  const check = (): void => {
    if (done) return
    if (proc.ppid() !== parent) {
      done = true
      onGone('the HAProxy master that launched the agent is gone')
    } else if (softStopping && siblingHaproxyWorkers(proc) === 0) {
      done = true
      onGone('HAProxy soft-stop: no HAProxy worker left')
    }
  }
  const timer = setInterval(check, everyMs)
  timer.unref()
  return {
    softStop: () => {
      softStopping = true
      check()
    },
    stop: () => clearInterval(timer),
  }
}
