// The process around the daemon: parse the command line, check what can be
// checked before serving (--check stops there), log, start, write the
// pidfile, handle signals (SIGTERM/SIGINT: graceful stop, a second one exits
// at once; SIGHUP: reopen the log file), stop after -r, daemonize with -D,
// or become the supervisor that runs the daemon's process (supervisor.ts).
// Exit codes: 0 stopped normally (or --check found nothing wrong), 1 could
// not start for a reason outside the configuration (an address in use) or
// crashed, 2 bad configuration: a value, file or address that cannot work.
// Every start-up failure is one line on stderr, never a stack trace.

import { spawn } from 'node:child_process'
import { unlinkSync, writeFileSync } from 'node:fs'
import { type CliResult, parseCli } from './cli.js'
import { printableConfig } from './config.js'
import { parentIsHaproxy, watchHaproxyParent } from './haproxy-parent.js'
import { createLogger, type LogHandle } from './logger.js'
import { type Daemon, startDaemon } from './main.js'
import { startMonitor } from './monitor.js'
import { formatAddress } from '../metrics/address.js'
import { preflight, StartError } from './preflight.js'
import { shouldSupervise, supervise, supervisedBy, watchSupervisor } from './supervisor.js'
import { ConfigError } from '../util/config-error.js'
import { describeFsError } from '../util/file-check.js'
import { redactHeaders, redactUrl } from '../util/redact.js'
import { VERSION } from './version.js'

const DETACHED_ENV = 'SPOA_TRACER_DETACHED'
/** Before --shutdown-timeout ends: room for the exit itself (the worker threads end with the process). */
const EXIT_MARGIN_MS = 100

type Ipc = { type: 'ready'; pid: number } | { type: 'error'; message: string; status: number }

export async function main(argv: string[]): Promise<void> {
  let cli: CliResult
  try {
    cli = await parseCli(argv, { env: process.env, isTTY: process.stdout.isTTY === true, stderrIsTTY: process.stderr.isTTY === true })
  } catch (thrown) {
    const err = thrown instanceof ConfigError ? thrown : new ConfigError('', String((thrown as Error).message ?? thrown))
    for (const p of err.problems) process.stderr.write(`spoa-tracer: ${p.message}\n`)
    // A usage slip (unknown option, missing value) gets the pointer to the list of options.
    if (err.problems.some((p) => p.option === '')) process.stderr.write("Try 'spoa-tracer --help' for the options and the values they accept.\n")
    process.exit(2)
  }
  if (cli.action === 'help' || cli.action === 'version' || cli.action === 'print-share-dir') {
    process.stdout.write(`${cli.text}\n`)
    return
  }
  const problems = await preflight(cli, { check: cli.action === 'check' })
  if (cli.action === 'check') return check(cli, problems)
  if (problems.length > 0) return refuse(problems.map((p) => p.message), 2)
  if (cli.daemonize && process.env[DETACHED_ENV] !== '1') return daemonize(argv)

  const supervised = supervisedBy()
  // The supervisor truncated a 'w' log file once; each agent it runs appends to it.
  if (supervised !== null && cli.log.file?.mode === 'w') cli.log.file = { ...cli.log.file, mode: 'a' }
  let log: LogHandle
  try {
    log = createLogger(cli.log)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return refuse([err.message], 2)
  }
  if (shouldSupervise(cli.supervise, parentIsHaproxy())) {
    const detached = process.env[DETACHED_ENV] === '1'
    return supervise({
      argv,
      log,
      runtimeMs: cli.config.runtimeMs,
      shutdownTimeoutMs: cli.config.shutdownTimeoutMs,
      pidfile: cli.pidfile,
      underHaproxy: parentIsHaproxy(),
      onFirstReady: (pid) => void tellParent({ type: 'ready', pid }),
      // -D reports a failed start and gives up; elsewhere a failed start is retried like a crash.
      onStartFailure: (message) => (detached ? (void tellParent({ type: 'error', message, status: 1 }), true) : false),
    })
  }
  const logger = log.logger
  for (const w of cli.warnings) logger.warn(w)
  logger.debug({ config: printableConfig(cli.config) }, 'configuration')

  // Signals are handled from here on, before the daemon is up: its listener
  // answers HAProxy while the export workers are still loading, and a SIGTERM
  // then must stop it gracefully, not kill it; while the listener waits for
  // its address (--listen-retry), a stop ends the wait.
  let daemon: Daemon | null = null
  let stopRequested: string | null = null
  let stopping = false
  let stopMonitor = (): void => {}
  const starting = new AbortController()
  // Under a supervisor the pidfile names the supervisor, which writes it.
  const pidfile = supervised === null ? cli.pidfile : null
  const stop = async (why: string): Promise<void> => {
    if (daemon === null) {
      stopRequested ??= why
      starting.abort()
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
      logger.error({ error: (err as Error).message }, 'error while stopping')
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
  // -r counts from the start: it also ends a wait for the address.
  // (a supervised agent leaves -r to its supervisor).
  if (cli.config.runtimeMs > 0 && supervised === null) setTimeout(() => void stop('runtime elapsed'), cli.config.runtimeMs).unref()

  try {
    daemon = await startDaemon(cli.config, logger, { signal: starting.signal, agentRestarts: supervised?.restarts ?? 0 })
  } catch (err) {
    if (stopRequested !== null && (err as Error).name === 'AbortError') {
      logger.info({ reason: stopRequested }, 'stopped before listening')
      await log.flush()
      process.exit(0)
    }
    const known = err instanceof ConfigError || err instanceof StartError
    const message = known ? err.message : `cannot start: ${(err as Error).message}`
    // A log file gets the line too: whoever reads it wants to know why the agent is not there.
    if (cli.log.file) logger.fatal(message)
    await log.flush()
    return refuse([message], err instanceof ConfigError ? 2 : 1)
  }
  if (pidfile !== null) {
    try {
      writeFileSync(pidfile, `${process.pid}\n`)
    } catch (err) {
      const message = `--pidfile: cannot write ${pidfile}: ${describeFsError(err, pidfile)}`
      if (cli.log.file) logger.fatal(message)
      await daemon.close()
      await log.flush()
      return refuse([message], 2)
    }
    process.once('exit', () => removePidfile(pidfile))
  }
  const e = cli.config.export
  logger.info(
    {
      version: VERSION,
      listen: daemon.address,
      exporter: e.exporter,
      endpoint: e.exporter === 'otlp' ? `${redactUrl(e.endpoint)} (${e.protocol})` : e.exporter === 'file' ? e.file : e.exporter,
      ...(e.exporter === 'otlp' && Object.keys(e.headers).length > 0 ? { headers: redactHeaders(e.headers) } : {}),
      workers: e.numWorkers,
      capabilities: cli.config.capabilities,
      ...(supervised !== null ? { restarts: supervised.restarts } : {}),
    },
    'spoa-tracer started',
  )
  void tellParent({ type: 'ready', pid: process.pid })
  if (cli.config.monitorIntervalMs > 0) stopMonitor = startMonitor(daemon, logger, cli.config.monitorIntervalMs)
  if (stopRequested !== null) await stop(stopRequested)
}

/** Refuses to start: each line on stderr (a -D child tells its parent, which prints them), then the exit status. */
async function refuse(lines: string[], status: 1 | 2): Promise<never> {
  for (const l of lines) process.stderr.write(`spoa-tracer: ${l}\n`)
  await tellParent({ type: 'error', message: lines.join('\n'), status })
  process.exit(status)
}

/** --check: one line per problem and status 2, or one line saying the configuration is valid. */
async function check(cli: CliResult, problems: ConfigError[]): Promise<void> {
  if (problems.length > 0) await refuse(problems.map((p) => p.message), 2)
  const c = cli.config
  const listen = formatAddress(c.listen)
  const e = c.export
  const to = e.exporter === 'otlp' ? ` to ${redactUrl(e.endpoint)} (${e.protocol})` : e.exporter === 'file' ? ` to ${e.file}` : ''
  process.stdout.write(`spoa-tracer: configuration valid: listen ${listen}, exporter ${e.exporter}${to}\n`)
  process.exit(0)
}

function removePidfile(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // Already gone.
  }
}

/** In a -D child or a supervised agent: report readiness (or failure) to the parent waiting for it; resolves once sent (bounded). */
function tellParent(m: Ipc): Promise<void> {
  if ((process.env[DETACHED_ENV] !== '1' && supervisedBy() === null) || !process.send || !process.connected) return Promise.resolve()
  return new Promise<void>((resolve) => {
    setTimeout(resolve, 1000).unref()
    // The parent may close the channel first (it exits on 'ready'): both orders are fine.
    process.send!(m, () => {
      if (process.connected) process.disconnect()
      resolve()
    })
  })
}

/**
 * -D: start a copy of this process in a new session (setsid, via a detached
 * spawn), wait until it listens and wrote its pidfile, then exit 0. A child
 * that fails to start makes the parent print why and exit with its status.
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
    setTimeout(() => resolve({ type: 'error', message: 'the daemon did not start: no sign of life after 30 s', status: 1 }), 30_000).unref()
  })
  if (outcome.type === 'ready') {
    child.unref()
    child.disconnect()
    process.exit(0)
  }
  child.kill('SIGKILL')
  // The daemon's own lines, and its status: a bad value is still status 2.
  if (outcome.type === 'error') {
    for (const l of outcome.message.split('\n')) process.stderr.write(`spoa-tracer: ${l}\n`)
    process.exit(outcome.status)
  }
  process.stderr.write(`spoa-tracer: the daemon did not start: it exited with status ${outcome.code}\n`)
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
