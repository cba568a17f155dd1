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

function stat(pid: number | string): { comm: string; ppid: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const close = s.lastIndexOf(')')
    const comm = s.slice(s.indexOf('(') + 1, close)
    const ppid = Number(s.slice(close + 2).split(' ')[1])
    return { comm, ppid }
  } catch {
    return null
  }
}

/** True when our parent process is HAProxy (its master, in master-worker mode). */
export function parentIsHaproxy(): boolean {
  return stat(process.ppid)?.comm === 'haproxy'
}

/** HAProxy processes sharing our parent (its workers), or -1 if /proc cannot tell. */
export function siblingHaproxyWorkers(): number {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return -1
  }
  const parent = process.ppid
  let n = 0
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57 || Number(e) === process.pid) continue
    const s = stat(e)
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
export function watchHaproxyParent(onGone: (reason: string) => void, everyMs = 500): ParentWatch {
  const parent = process.ppid
  let softStopping = false
  let done = false
  const check = (): void => {
    if (done) return
    if (process.ppid !== parent) {
      done = true
      onGone('the HAProxy master that launched the agent is gone')
    } else if (softStopping && siblingHaproxyWorkers() === 0) {
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
