// The processes a test or a benchmark starts (HAProxy, wrk, the agent, an
// agent given as a shell command, a Node child): spawned, their output kept,
// tracked so that an exit, SIGINT or SIGTERM of ours stops them (by PID, or
// by process group for a shell command), and stopped with a bounded wait.
// Only processes started here are ever signalled.

import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

interface Tracked {
  child: ChildProcess
  /** Spawned detached: signal the process group -pid. */
  group: boolean
}

const tracked = new Set<Tracked>()
let exitHook = false

function signal(t: Tracked, sig: NodeJS.Signals): void {
  const pid = t.child.pid
  if (pid === undefined) return
  if (!t.group && (t.child.exitCode !== null || t.child.signalCode !== null)) return
  try {
    process.kill(t.group ? -pid : pid, sig)
  } catch {
    // already gone
  }
}

/** SIGKILLs every tracked process still running (this process exits, or gives up). */
export function killTracked(): void {
  for (const t of tracked) signal(t, 'SIGKILL')
  tracked.clear()
}

/**
 * Stops the tracked processes on SIGINT/SIGTERM (then exits 130) as well as
 * on exit; returns the function that removes the signal handlers again.
 */
export function guardChildren(): () => void {
  const onSignal = (): void => {
    for (const t of tracked) signal(t, 'SIGTERM')
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Whether a process with this pid exists (signal 0 tests without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves when it has exited. */
  readonly exited: Promise<void>
  hasExited(): boolean
  /** Its stdout and stderr as they came (the last `keep` characters). */
  output(): string
  /** The last `max` characters of output(), for error messages. */
  tail(max?: number): string
  /** Its stdout alone, and its stderr alone (captured ones only). */
  stdout(): string
  stderr(): string
  /** SIGTERM (to the group when detached), then SIGKILL after `ms`; resolves once it has exited. */
  stop(ms?: number, sig?: NodeJS.Signals): Promise<void>
}

export interface SpawnTracked {
  name: string
  command: string
  args: readonly string[]
  /** Added to this process's environment. */
  env?: Record<string, string>
  cwd?: string
  /** Own process group (a shell command and whatever it starts): stopped as a group. */
  group?: boolean
  /**
   * With `group`: 'own' (default), a session of its own as well (setsid);
   * 'ours', this process's session (setpgid alone, through perl, which
   * Debian always has). The session matters to the scheduler: with the
   * kernel's autogroups each session shares the CPU as one group, so a
   * benchmark's processes compare fairly only in the same one.
   */
  session?: 'own' | 'ours'
  /** 'pipe' to write to its stdin (child.stdin); default 'ignore'. */
  stdin?: 'pipe' | 'ignore'
  /** Keep its stdout to read (default), or leave it to the caller (child.stdout, unread). */
  stdout?: 'keep' | 'pipe'
  /** Keep its stderr (default), or pass it through to ours. */
  stderr?: 'keep' | 'inherit'
  /** Keep this much of its output, characters (default 1 MiB). */
  keep?: number
}

/** Spawns a process, keeps its output, and stops it when this process exits. */
export function spawnTracked(o: SpawnTracked): Proc {
  if (!exitHook) {
    exitHook = true
    process.on('exit', killTracked)
  }
  const opts: SpawnOptions = {
    env: { ...process.env, ...(o.env ?? {}) },
    stdio: [o.stdin ?? 'ignore', 'pipe', o.stderr === 'inherit' ? 'inherit' : 'pipe'],
    detached: o.group === true && o.session !== 'ours',
  }
  if (o.cwd !== undefined) opts.cwd = o.cwd
  const child =
    o.group === true && o.session === 'ours'
      ? spawn('perl', ['-e', 'setpgrp(0, 0); exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n"', o.command, ...o.args], opts)
      : spawn(o.command, [...o.args], opts)
  const t: Tracked = { child, group: o.group === true }
  tracked.add(t)
  const keep = o.keep ?? 1 << 20
  const trim = (s: string): string => (s.length > 2 * keep ? s.slice(-keep) : s)
  let out = ''
  let stdout = ''
  let stderr = ''
  if (o.stdout !== 'pipe') {
    child.stdout!.on('data', (d: Buffer) => {
      out = trim(out + d.toString())
      stdout = trim(stdout + d.toString())
    })
  }
  child.stderr?.on('data', (d: Buffer) => {
    out = trim(out + d.toString())
    stderr = trim(stderr + d.toString())
  })
  let done = false
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true
      if (!t.group) tracked.delete(t)
      resolve()
    })
    child.once('error', (err) => {
      out += `\n${o.name}: ${err.message}`
      done = true
      tracked.delete(t)
      resolve()
    })
  })
  return {
    name: o.name,
    child,
    pid: child.pid ?? -1,
    exited,
    hasExited: () => done,
    output: () => out,
    tail: (max = 4000) => out.slice(-max),
    stdout: () => stdout,
    stderr: () => stderr,
    async stop(ms = 5000, sig: NodeJS.Signals = 'SIGTERM') {
      if (done && !t.group) return
      signal(t, sig)
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)))
      if ((await Promise.race([exited, late])) === 'late') {
        console.error(`${o.name} (pid ${child.pid}) still running ${ms} ms after ${sig}; killing it`)
        signal(t, 'SIGKILL')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))])
      }
      clearTimeout(timer)
      // The group's other members (a shell's children) get the same treatment.
      if (t.group) {
        if (groupPids(child.pid ?? -1).length > 0) signal(t, 'SIGKILL')
        tracked.delete(t)
      }
    },
  }
}

/** The fields of /proc/<pid>/stat after the command name (field 3, the state, first); null if it is gone. */
export function statFields(pid: number | 'self'): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // pid (comm) state ...: comm may hold spaces and parentheses, so split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** Live processes of process group `pgid` (a detached shell command and what it started). */
export function groupPids(pgid: number): number[] {
  if (pgid <= 0) return []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  const out: number[] = []
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    const f = statFields(Number(e))
    // f[2] is field 5 (pgrp).
    if (f !== null && Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(e))
  }
  return out
}
