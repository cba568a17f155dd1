// The agent's CPU scheduling policy (--cpu-sched). `idle` puts every thread
// of the process under Linux's SCHED_IDLE: the agent then runs only on CPU
// time that HAProxy, its servers and everything else leave over, and its
// wake-ups never preempt them. That suits an agent that only takes HAProxy's
// log stream, where nothing waits on it: HAProxy keeps its records in its
// ring meanwhile. It does not suit SPOE, where every traced request waits
// for the agent's ACK. A lower nice value or SCHED_BATCH did not help
// (docs/BENCHMARKS.md): what costs HAProxy is the agent preempting it.
//
// `tracing-idle` is the same for SPOE: the main thread, which answers
// HAProxy, keeps the normal policy, and the tracing thread (the trees,
// tracing-thread.ts) runs under SCHED_IDLE; its export worker, which only
// sends HTTP requests, keeps the normal policy (with -n 0 there is none:
// the tracing thread sends them).
// HAProxy then waits for nothing that runs on idle time, and the span work
// no longer preempts it.
//
// Node.js has no call for the scheduling policy; util-linux's chrt sets it
// for every thread at once (or for one, by its kernel tid), and threads
// started later (export workers, libuv's pool) inherit it from the thread
// that starts them.

import { execFileSync } from 'node:child_process'
import { accessSync, constants, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { delimiter, join } from 'node:path'

export const CPU_SCHEDS = ['normal', 'idle', 'tracing-idle'] as const
export type CpuSched = (typeof CPU_SCHEDS)[number]

/** Linux's number for SCHED_IDLE, as /proc/<pid>/task/<tid>/stat gives a thread's policy. */
const SCHED_IDLE = 5

/** What keeps the policy from being applied here, for --check (null: nothing known). */
export function cpuSchedProblem(policy: CpuSched, path = process.env.PATH ?? ''): string | null {
  if (policy === 'normal') return null
  if (process.platform !== 'linux') return `${policy}: SCHED_IDLE is Linux only`
  const found = path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir === '' ? '.' : dir, 'chrt'), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
  return found ? null : `${policy}: chrt (util-linux) is not installed (not found on PATH)`
}

/**
 * `idle`: applies SCHED_IDLE to every thread of this process; throws an Error
 * with one line when it cannot. `tracing-idle` is applied by the tracing
 * thread to itself (applyIdleToThisThread).
 */
export function applyCpuSched(policy: CpuSched): void {
  if (policy !== 'idle') return
  chrtIdle(['--all-tasks', '--pid', '0', String(process.pid)], policy)
  const left = threadPolicies(process.pid).filter((p) => p !== SCHED_IDLE).length
  if (left > 0) throw new Error(`--cpu-sched idle: ${left} thread(s) kept their policy after chrt`)
}

/** SCHED_IDLE for the calling thread alone, and the threads it starts afterwards; throws an Error with one line when it cannot. */
export function applyIdleToThisThread(policy: CpuSched): void {
  let tid: string
  try {
    tid = readlinkSync('/proc/thread-self').split('/').pop()!
  } catch {
    throw new Error(`--cpu-sched ${policy}: cannot tell this thread's id (/proc/thread-self)`)
  }
  chrtIdle(['--pid', '0', tid], policy)
  if (threadPolicy(process.pid, tid) !== SCHED_IDLE) throw new Error(`--cpu-sched ${policy}: the tracing thread kept its policy after chrt`)
}

function chrtIdle(args: string[], policy: CpuSched): void {
  if (process.platform !== 'linux') throw new Error(`--cpu-sched ${policy}: SCHED_IDLE is Linux only`)
  try {
    execFileSync('chrt', ['--idle', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    const why = e.code === 'ENOENT' ? 'chrt (util-linux) is not installed' : (e.stderr?.toString().trim().split('\n')[0] ?? e.message)
    throw new Error(`--cpu-sched ${policy}: could not set SCHED_IDLE: ${why}`)
  }
}

/**
 * Why SCHED_IDLE may not keep this agent out of HAProxy's way: with the
 * kernel's autogroups on (kernel.sched_autogroup_enabled, the default of
 * most distributions), every session is a scheduling group of its own, and
 * the CPU is first shared between groups, fairly. A SCHED_IDLE thread then
 * yields only to the threads of its own group: an agent in a session of
 * its own (started by systemd, with -D, or under setsid) competes with
 * HAProxy's group as an equal, idle threads included (docs/BENCHMARKS.md:
 * the shipped binary kept 80% of the do-nothing agent's requests/s instead
 * of 94-97%). Launched by HAProxy (a `program` section), or from HAProxy's
 * session, it shares HAProxy's group. Detected as: autogroups on, and this
 * process in another autogroup than its parent's. Control groups with the
 * cpu controller do the same between services; that is not detected.
 */
export function schedGroupProblem(policy: CpuSched, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): string | null {
  if (policy === 'normal' || process.platform !== 'linux') return null
  try {
    if (read('/proc/sys/kernel/sched_autogroup_enabled').trim() !== '1') return null
    const own = read('/proc/self/autogroup').trim()
    const parent = read(`/proc/${process.ppid}/autogroup`).trim()
    if (own === parent) return null
    return (
      `--cpu-sched ${policy}: this agent runs in a scheduling group of its own (${own === '' ? 'the root group' : own.split(' ')[0]}; ` +
      'a session of its own, with kernel.sched_autogroup_enabled=1), where SCHED_IDLE yields only to its own threads, not to HAProxy: ' +
      'launch it from HAProxy (a program section) or in its session, or set kernel.sched_autogroup_enabled=0'
    )
  } catch {
    return null // not readable here: nothing known
  }
}

/** The scheduling policy of each thread of a process (field 41 of its stat lines); [] where /proc cannot be read. */
export function threadPolicies(pid: number): number[] {
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return []
  }
  const out: number[] = []
  for (const tid of tids) {
    const p = threadPolicy(pid, tid)
    if (p !== null) out.push(p)
  }
  return out
}

/** The scheduling policy of one thread (field 41 of its stat line); null if it is gone. */
export function threadPolicy(pid: number, tid: string | number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[41 - 3])
  } catch {
    return null // the thread ended meanwhile
  }
}
