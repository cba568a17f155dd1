// CPU and memory as the benchmarks measure them, from /proc: a process's
// user + system time (all its threads), its threads one by one, the CPU of
// this process's reaped children, RSS and peak RSS, a process group's sums,
// and the machine's busy time. Read from outside, so that processes we did
// not write (HAProxy, wrk, another agent) are measured the same way as ours.
// Linux only; elsewhere the readers return NaN, zeros or null.

import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { groupPids, statFields } from '../harness/process.js'

let clockTicks = 0

/** USER_HZ, the unit of /proc/stat and /proc/<pid>/stat. Asked once: it spawns a process. */
export function clockTicksPerSec(): number {
  if (clockTicks !== 0) return clockTicks
  try {
    clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100
  } catch {
    clockTicks = 100
  }
  return clockTicks
}

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

export interface Mem {
  rssBytes: number
  /** VmHWM: the process's largest RSS so far. */
  peakRssBytes: number
}

/** VmRSS and VmHWM of a process; zeros if it is gone. */
export function procMem(pid: number | 'self'): Mem {
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

/** This process's RSS and peak RSS (process.memoryUsage where /proc is not there). */
export function readRss(): Mem {
  const m = procMem('self')
  const rss = m.rssBytes || process.memoryUsage.rss()
  return { rssBytes: rss, peakRssBytes: Math.max(m.peakRssBytes, rss) }
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

export interface MachineCpu {
  /** user + nice + system + irq + softirq, all cores, microseconds. */
  busyUs: number
  /** irq + softirq alone (inside busyUs): on loopback, much of it is our own network traffic. */
  irqUs: number
  stealUs: number
}

export function readMachineCpu(): MachineCpu | null {
  let line: string | undefined
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
  } catch {
    return null
  }
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const f = line?.trim().split(/\s+/).slice(1).map(Number) ?? []
  if (f.length < 8) return null
  const us = 1e6 / clockTicksPerSec()
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number]
  return { busyUs: (user + nice + system + irq + softirq) * us, irqUs: (irq + softirq) * us, stealUs: steal * us }
}

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
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
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
