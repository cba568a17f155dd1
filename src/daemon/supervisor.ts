// The supervising parent (--supervise; on by default when HAProxy launches
// the agent from a master-worker `program` section). It owns keeping the
// agent running and keeping HAProxy out of its failures:
//
// - HAProxy's master stops every process (exit-on-failure) when a program
//   exits with a status other than 0, 130 (SIGINT) or 143 (SIGTERM), and
//   never starts a program again except on a reload with start-on-reload.
//   So the process HAProxy launched stays a small parent that runs the agent
//   as its child, restarts it whenever it exits (100 ms after the exit,
//   doubling on a crash loop up to 10 s, back to 100 ms once a run lasted
//   10 s), logs each restart on one line and counts it, and itself ends only
//   with status 0.
// - It owns the lifecycle: SIGTERM and SIGINT stop the agent gracefully, then
//   the supervisor (a second one is passed on: the agent exits at once);
//   SIGHUP reopens both log files; -r; and under HAProxy what
//   haproxy-parent.ts observes (SIGUSR1 soft-stop, the master gone).
// - The agent runs in its own session, so a terminal's Ctrl-C reaches it
//   once, through us; it stops by itself if we die (watchSupervisor()).

import { type ChildProcess, spawn } from 'node:child_process'
import { unlinkSync, writeFileSync } from 'node:fs'
import type { LogHandle } from './logger.js'
import { watchHaproxyParent } from './haproxy-parent.js'

/** Set in the agent's environment: the supervisor's pid. */
export const SUPERVISOR_ENV = 'SPOA_TRACER_SUPERVISOR'
/** Set in the agent's environment: how many times it was restarted so far. */
export const RESTARTS_ENV = 'SPOA_TRACER_RESTARTS'

export interface BackoffPolicy {
  /** Delay before the first restart of a series. */
  firstMs: number
  /** Longest delay: a crash loop restarts at this pace. */
  maxMs: number
  /** A run at least this long ends a crash loop: the next delay is firstMs again. */
  stableMs: number
}

export const BACKOFF: BackoffPolicy = { firstMs: 100, maxMs: 10_000, stableMs: 10_000 }

/** The delay before a restart, the agent having exited `inARow` times without a stable run (1 = the first). */
export function restartDelayMs(inARow: number, policy: BackoffPolicy = BACKOFF): number {
  return Math.min(policy.maxMs, policy.firstMs * 2 ** Math.min(30, Math.max(0, inARow - 1)))
}

/** The delays of one supervisor's restarts: next() at each exit of the agent, with how long that run lasted. */
export class RestartBackoff {
  private inARow = 0

  constructor(private readonly policy: BackoffPolicy = BACKOFF) {}

  next(ranMs: number): number {
    this.inARow = ranMs >= this.policy.stableMs ? 1 : this.inARow + 1
    return restartDelayMs(this.inARow, this.policy)
  }
}

/** Whether to run as the supervisor: never in the agent it runs; --supervise / --no-supervise; else when HAProxy launched us. */
export function shouldSupervise(option: boolean | null, launchedByHaproxy: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env[SUPERVISOR_ENV] !== undefined) return false
  return option ?? launchedByHaproxy
}

export interface Supervised {
  supervisorPid: number
  restarts: number
}

/** In the agent: its supervisor and restart count, or null when not supervised. */
export function supervisedBy(env: NodeJS.ProcessEnv = process.env): Supervised | null {
  const pid = Number(env[SUPERVISOR_ENV])
  if (!Number.isInteger(pid) || pid <= 0) return null
  const restarts = Number(env[RESTARTS_ENV])
  return { supervisorPid: pid, restarts: Number.isInteger(restarts) && restarts >= 0 ? restarts : 0 }
}

/** In the agent: calls onGone once if the supervisor dies (we are reparented). */
export function watchSupervisor(s: Supervised, onGone: () => void, everyMs = 500): () => void {
  const timer = setInterval(() => {
    if (process.ppid === s.supervisorPid) return
    clearInterval(timer)
    onGone()
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}

/** What the agent tells its supervisor over IPC (the same messages -D's parent gets). */
export type AgentMessage = { type: 'ready'; pid: number } | { type: 'error'; message: string }

export interface SuperviseOptions {
  /** The agent's command line: ours, unchanged. */
  argv: string[]
  log: LogHandle
  runtimeMs: number
  shutdownTimeoutMs: number
  /** Written with our pid once the agent is first ready, removed when we exit. */
  pidfile: string | null
  /** Launched by HAProxy: follow its lifecycle (haproxy-parent.ts). */
  underHaproxy: boolean
  /** -D: the agent is ready for the first time (tell the waiting parent). */
  onFirstReady?: (pid: number) => void
  /**
   * -D: the agent could not start before it was ever ready. Return true to
   * give up (exit 1); otherwise it is restarted like any crash.
   */
  onStartFailure?: (message: string) => boolean
}

/** Runs the agent as a child and keeps it running until told to stop; exits the process. */
export function supervise(o: SuperviseOptions): void {
  const logger = o.log.logger.child({ component: 'supervisor' })
  const backoff = new RestartBackoff()
  let child: ChildProcess | null = null
  let startedAt = 0
  let restarts = 0
  let everReady = false
  let stopping = false
  let gaveUp = false
  let restartTimer: NodeJS.Timeout | null = null

  const exit = (code: number): void => {
    if (o.pidfile !== null && everReady) removeFile(o.pidfile)
    void o.log.flush().finally(() => process.exit(code))
  }

  const start = (): void => {
    restartTimer = null
    startedAt = Date.now()
    const c = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...o.argv], {
      // Its own session: a terminal's signals reach it through us only, once.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [SUPERVISOR_ENV]: String(process.pid), [RESTARTS_ENV]: String(restarts) },
    })
    child = c
    c.on('message', (m: AgentMessage) => {
      if (m.type === 'ready' && !everReady) {
        everReady = true
        if (o.pidfile !== null) writePidfile(o.pidfile)
        o.onFirstReady?.(process.pid)
      } else if (m.type === 'error' && !everReady && o.onStartFailure?.(m.message)) {
        stopping = gaveUp = true // the agent's exit ends us, with status 1
      }
    })
    c.on('error', (err) => {
      logger.error({ err: err.message }, 'cannot run the agent')
      // Never started (fork failed): no 'exit' will come, retry like a crash.
      if (c.pid === undefined) exited(c, null, null)
    })
    c.once('exit', (code, signal) => exited(c, code, signal))
  }

  const exited = (c: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void => {
    if (child !== c) return
    child = null
    // Asked to stop: status 0 whatever the agent's, which HAProxy takes as a normal end.
    if (stopping) return exit(gaveUp ? 1 : 0)
    const ranMs = Date.now() - startedAt
    const delayMs = backoff.next(ranMs)
    restarts++
    logger.warn(
      { restarts, exitCode: code, signal, ranMs, delayMs },
      `the agent ${signal !== null ? `was killed by ${signal}` : code !== null ? `exited with status ${code}` : 'could not be run'}: restarting it in ${delayMs} ms`,
    )
    restartTimer = setTimeout(start, delayMs)
  }

  const writePidfile = (path: string): void => {
    try {
      writeFileSync(path, `${process.pid}\n`)
    } catch (err) {
      logger.error({ pidfile: path, err: (err as Error).message }, 'cannot write the pidfile')
    }
  }

  const stop = (reason: string, signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (stopping) {
      // A second signal: pass it on, the agent then exits at once.
      child?.kill(signal)
      return
    }
    stopping = true
    logger.info({ reason }, 'stopping')
    if (restartTimer !== null) clearTimeout(restartTimer)
    if (child === null) return exit(0)
    child.kill(signal)
    // The agent keeps its own deadline (--shutdown-timeout); this one is for an agent that cannot.
    const c = child
    setTimeout(() => {
      if (child !== c) return
      logger.error({ afterMs: o.shutdownTimeoutMs + 2000 }, 'the agent did not stop in time: killing it')
      c.kill('SIGKILL')
    }, o.shutdownTimeoutMs + 2000).unref()
  }

  process.on('SIGTERM', () => stop('SIGTERM', 'SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT', 'SIGINT'))
  process.on('SIGHUP', () => {
    o.log.reopen()
    logger.info('log file reopened')
    child?.kill('SIGHUP')
  })
  // SIGUSR1 must always be handled: left alone, Node.js opens its inspector.
  if (o.underHaproxy) {
    const watch = watchHaproxyParent((reason) => stop(reason))
    process.on('SIGUSR1', () => {
      logger.info('SIGUSR1 from HAProxy (reload or soft-stop): the agent stops once no HAProxy worker is left')
      watch.softStop()
    })
  } else {
    process.on('SIGUSR1', () => logger.info('SIGUSR1 ignored: it has no meaning for a standalone agent'))
  }
  if (o.runtimeMs > 0) setTimeout(() => stop('runtime elapsed'), o.runtimeMs).unref()
  // Our own failure must not become HAProxy's (exit-on-failure): stop the agent, end with 0.
  const fatal = (err: unknown): void => {
    logger.fatal({ err }, 'supervisor failure: stopping the agent')
    child?.kill('SIGTERM')
    exit(0)
  }
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', fatal)

  logger.info({ restartDelays: BACKOFF }, 'supervising the agent: it is restarted whenever it exits')
  start()
}

function removeFile(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // Already gone.
  }
}
