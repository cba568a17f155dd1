// The process around the daemon: parse the command line, log, start, write
// the pidfile, handle signals (SIGTERM/SIGINT: graceful stop, a second one
// exits at once; SIGHUP: reopen the log file), stop after -r, daemonize
// with -D, or become the supervisor that runs the daemon's process
// (src/supervisor.ts). Exit codes: 0 stopped normally, 1 failed at start or
// crashed, 2 bad command line.

import { spawn } from 'node:child_process'
import { unlinkSync, writeFileSync } from 'node:fs'
import { type CliResult, parseCli } from './cli.js'
import { parentIsHaproxy, watchHaproxyParent } from './haproxy-parent.js'
import { createLogger, type LogHandle } from './logger.js'
import { type Daemon, startDaemon } from './main.js'
import { startMonitor } from './monitor.js'
import { shouldSupervise, supervise, supervisedBy, watchSupervisor } from './supervisor.js'
import { ConfigError } from './util/config-error.js'
import { VERSION } from './version.js'

const DETACHED_ENV = 'SPOA_TRACER_DETACHED'
/** Before --shutdown-timeout ends: room for the exit itself (the worker threads end with the process). */
const EXIT_MARGIN_MS = 100

type Ipc = { type: 'ready'; pid: number } | { type: 'error'; message: string }

export async function main(argv: string[]): Promise<void> {
  let cli: CliResult
  try {
    cli = await parseCli(argv, { env: process.env, isTTY: process.stdout.isTTY === true, stderrIsTTY: process.stderr.isTTY === true })
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    process.stderr.write(`spoa-tracer: ${msg}\nTry 'spoa-tracer --help' for the options and the values they accept.\n`)
    process.exit(2)
  }
  if (cli.action !== 'run') {
    process.stdout.write(`${cli.text}\n`)
    return
  }
  if (cli.daemonize && process.env[DETACHED_ENV] !== '1') return daemonize(argv)

  const supervised = supervisedBy()
  // The supervisor truncated a 'w' log file once; each agent it runs appends to it.
  if (supervised !== null && cli.log.file?.mode === 'w') cli.log.file = { ...cli.log.file, mode: 'a' }
  const log = createLogger(cli.log)
  if (shouldSupervise(cli.supervise, parentIsHaproxy())) {
    const detached = process.env[DETACHED_ENV] === '1'
    return supervise({
      argv,
      log,
      runtimeMs: cli.config.runtimeMs,
      shutdownTimeoutMs: cli.config.shutdownTimeoutMs,
      pidfile: cli.pidfile,
      underHaproxy: parentIsHaproxy(),
      onFirstReady: (pid) => tellParent({ type: 'ready', pid }),
      // -D reports a failed start and gives up; elsewhere a failed start is retried like a crash.
      onStartFailure: (message) => (detached ? (tellParent({ type: 'error', message }), true) : false),
    })
  }
  const logger = log.logger
  for (const w of cli.warnings) logger.warn(w)

  // Signals are handled from here on, before the daemon is up: its listener
  // answers HAProxy while the export workers are still loading, and a SIGTERM
  // then must stop it gracefully, not kill it.
  let daemon: Daemon | null = null
  let stopRequested: string | null = null
  let stopping = false
  let stopMonitor = (): void => {}
  // Under a supervisor the pidfile names the supervisor, which writes it.
  const pidfile = supervised === null ? cli.pidfile : null
  const stop = async (why: string): Promise<void> => {
    if (daemon === null) {
      stopRequested ??= why
      return
    }
    if (stopping) return
    stopping = true
    // The process is gone by --shutdown-timeout from here, whatever hangs.
    const deadline = Date.now() + cli.config.shutdownTimeoutMs
    const overdue = setTimeout(() => {
      logger.error({ shutdownTimeoutMs: cli.config.shutdownTimeoutMs }, 'graceful stop not done by --shutdown-timeout: exiting now')
      log.flushSync()
      process.exit(1)
    }, Math.max(100, cli.config.shutdownTimeoutMs - EXIT_MARGIN_MS))
    overdue.unref()
    logger.info({ reason: why }, 'stopping')
    stopMonitor()
    try {
      await daemon.close()
    } catch (err) {
      logger.error({ err }, 'error while stopping')
    }
    if (pidfile !== null) removePidfile(pidfile)
    await log.flush(Math.max(0, deadline - EXIT_MARGIN_MS - Date.now()))
    process.exit(0)
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping || stopRequested !== null) {
      logger.warn({ signal: sig }, 'second signal: exiting now')
      log.flushSync()
      process.exit(1)
    }
    void stop(sig)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  process.on('SIGHUP', () => {
    log.reopen()
    logger.info('log file reopened')
  })
  // SIGUSR1 must always be handled: left alone, Node.js opens its inspector on
  // 127.0.0.1:9229, which anyone on the host could use to run code in the agent.
  if (supervised !== null) watchSupervisor(supervised, () => void stop('the supervisor is gone'))
  if (supervised === null && parentIsHaproxy()) {
    const watch = watchHaproxyParent((reason) => void stop(reason))
    process.on('SIGUSR1', () => {
      logger.info('SIGUSR1 from HAProxy (reload or soft-stop): the agent stops once no HAProxy worker is left')
      watch.softStop()
    })
  } else {
    process.on('SIGUSR1', () => logger.info('SIGUSR1 ignored: it has no meaning for a standalone agent'))
  }
  watchCrashes(log)

  try {
    daemon = await startDaemon(cli.config, logger, { agentRestarts: supervised?.restarts ?? 0 })
  } catch (err) {
    logger.fatal({ err }, 'cannot start')
    await log.flush()
    tellParent({ type: 'error', message: (err as Error).message })
    process.exit(1)
  }
  if (pidfile !== null) {
    try {
      writeFileSync(pidfile, `${process.pid}\n`)
    } catch (err) {
      logger.fatal({ err, pidfile }, 'cannot write the pidfile')
      tellParent({ type: 'error', message: `cannot write the pidfile ${pidfile}: ${(err as Error).message}` })
      await daemon.close()
      process.exit(1)
    }
    process.once('exit', () => removePidfile(pidfile))
  }
  logger.info(
    {
      version: VERSION,
      listen: daemon.address,
      exporter: cli.config.export.exporter,
      endpoint: exportTarget(cli),
      workers: cli.config.export.numWorkers,
      capabilities: cli.config.capabilities,
      ...(supervised !== null ? { restarts: supervised.restarts } : {}),
    },
    'spoa-tracer started',
  )
  tellParent({ type: 'ready', pid: process.pid })
  if (cli.config.monitorIntervalMs > 0) stopMonitor = startMonitor(daemon, logger, cli.config.monitorIntervalMs)
  if (cli.config.runtimeMs > 0 && supervised === null) setTimeout(() => void stop('runtime elapsed'), cli.config.runtimeMs).unref()
  if (stopRequested !== null) await stop(stopRequested)
}

function exportTarget(cli: CliResult): string {
  const e = cli.config.export
  return e.exporter === 'otlp' ? `${e.endpoint} (${e.protocol})` : e.exporter === 'file' ? e.file : e.exporter
}

function removePidfile(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // Already gone.
  }
}

/** In a -D child or a supervised agent: report readiness (or failure) to the parent waiting for it. */
function tellParent(m: Ipc): void {
  if ((process.env[DETACHED_ENV] !== '1' && supervisedBy() === null) || !process.send || !process.connected) return
  // The parent may close the channel first (it exits on 'ready'): both orders are fine.
  process.send(m, () => {
    if (process.connected) process.disconnect()
  })
}

/**
 * -D: start a copy of this process in a new session (setsid, via a detached
 * spawn), wait until it listens and wrote its pidfile, then exit 0. A child
 * that fails to start makes the parent print why and exit 1.
 */
async function daemonize(argv: string[]): Promise<void> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, [DETACHED_ENV]: '1' },
  })
  const outcome = await new Promise<Ipc | { type: 'exit'; code: number | null }>((resolve) => {
    child.once('message', (m: Ipc) => resolve(m))
    child.once('exit', (code) => resolve({ type: 'exit', code }))
    setTimeout(() => resolve({ type: 'error', message: 'no sign of life from the daemon after 30 s' }), 30_000).unref()
  })
  if (outcome.type === 'ready') {
    child.unref()
    child.disconnect()
    process.exit(0)
  }
  const why = outcome.type === 'error' ? outcome.message : `it exited with status ${outcome.code}`
  process.stderr.write(`spoa-tracer: the daemon did not start: ${why}\n`)
  child.kill('SIGKILL')
  process.exit(1)
}

function watchCrashes(log: LogHandle): void {
  let dying = false
  const die = (err: unknown, what: string): void => {
    if (dying) return
    dying = true
    log.logger.fatal({ err }, what)
    // The line that says why matters most: wait (bounded) for it to reach the disk.
    void log.flush().finally(() => process.exit(1))
  }
  process.on('uncaughtException', (err) => die(err, 'uncaught exception'))
  process.on('unhandledRejection', (err) => die(err, 'unhandled promise rejection'))
}

export { ConfigError }
