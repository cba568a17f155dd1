// What can be checked before serving, without serving: every file the agent
// will write can be written (nothing is created), every host name resolves,
// a unix socket path is usable. It runs at start, before anything listens, so
// that a bad path stops the start with one line and exit status 2, and for
// --check, which also resolves the collector's host name. It also turns the
// errors a listener gives at start into such lines (listenProblem).

import { lookup } from 'node:dns/promises'
import { lstatSync } from 'node:fs'
import { isIP } from 'node:net'
import { dirname, resolve } from 'node:path'
import type { ListenAddress } from '../agent/index.js'
import type { Config } from './config.js'
import { cpuSchedProblem } from './cpu-sched.js'
import type { LogOptions } from './logger.js'
import { formatAddress } from '../metrics/address.js'
import { ConfigError } from '../util/config-error.js'
import { describeFsError, writableDirProblem, writableFileProblem } from '../util/file-check.js'
import { redactUrl } from '../util/redact.js'

/** A start that failed for a reason that is not a bad value (a port in use): exit status 1, one line. */
export class StartError extends Error {
  override readonly name = 'StartError'
}

export interface PreflightInput {
  config: Config
  log: LogOptions
  pidfile: string | null
}

/** Host names resolve within this, or the check says they do not. */
const RESOLVE_TIMEOUT_MS = 5000

/**
 * Every problem found, one ConfigError each (empty: nothing wrong).
 * `check`: --check, which also resolves the OTLP endpoint's host (at start a
 * collector that is not there yet is an export failure, reported and retried).
 */
export async function preflight(input: PreflightInput, opts: { check: boolean }): Promise<ConfigError[]> {
  const { config, log, pidfile } = input
  const problems: ConfigError[] = []
  const file = (option: string, path: string, what: string): void => {
    const p = writableFileProblem(path)
    if (p !== null) problems.push(new ConfigError(option, `cannot ${what} ${path}: ${p}`))
  }
  if (log.file) file('--logfile', log.file.path, 'open')
  if (pidfile !== null) file('--pidfile', pidfile, 'write')
  if (config.export.exporter === 'file') file('--output-file', config.export.file, 'open')

  const resolving: Array<Promise<ConfigError | null>> = []
  const address = (option: string, a: ListenAddress): void => {
    if ('path' in a) {
      const p = unixSocketProblem(a.path)
      if (p !== null) problems.push(new ConfigError(option, `cannot listen on unix:${a.path}: ${p}`))
    } else if (isIP(a.host) === 0) {
      resolving.push(resolves(a.host).then((p) => (p === null ? null : new ConfigError(option, `cannot resolve "${a.host}": ${p}`))))
    }
  }
  address('--address', config.listen)
  if (config.metricsAddress !== null) address('--metrics-address', config.metricsAddress)
  // At start the policy is applied (status 1 when it cannot be); --check says so beforehand.
  const sched = opts.check ? cpuSchedProblem(config.cpuSched) : null
  if (sched !== null) problems.push(new ConfigError('--cpu-sched', sched))
  if (opts.check && config.export.exporter === 'otlp') {
    const host = new URL(config.export.endpoint).hostname.replace(/^\[|\]$/g, '')
    if (isIP(host) === 0) {
      resolving.push(
        resolves(host).then((p) => (p === null ? null : new ConfigError('--endpoint', `cannot resolve the host of ${redactUrl(config.export.endpoint)}: ${p}`))),
      )
    }
  }
  for (const p of await Promise.all(resolving)) if (p !== null) problems.push(p)
  return problems
}

/** null if the name resolves, else why not. */
async function resolves(host: string): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`no answer within ${RESOLVE_TIMEOUT_MS / 1000} s`), RESOLVE_TIMEOUT_MS)))
  try {
    return await Promise.race([
      lookup(host).then(
        () => null,
        (err: NodeJS.ErrnoException) =>
          err.code === 'ENOTFOUND' ? 'not an IP address, and no such host name' : `${err.code ?? err.message}`,
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** null if a unix socket can be made at `path` (a stale socket is replaced at start). */
function unixSocketProblem(path: string): string | null {
  try {
    if (!lstatSync(path).isSocket()) return `${path} exists and is not a socket`
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return describeFsError(err, path)
  }
  // The directory must let us create (and, for a stale socket, remove) the file.
  return writableDirProblem(dirname(resolve(path)))
}

/**
 * One line for a listener that did not start: a bad address (status 2, as a
 * ConfigError) or one in use (status 1, a StartError: it may be free later).
 * The line names the option at fault: the host's or the port's; `retry`:
 * --listen-retry applies to this address.
 */
export function listenProblem(a: ListenAddress, err: unknown, o: { host: string; port?: string; retry?: boolean }): Error {
  const hostOption = o.host
  const portOption = o.port ?? o.host
  const e = err as NodeJS.ErrnoException
  const where = formatAddress(a)
  const host = 'host' in a ? a.host : where
  switch (e.code) {
    case 'EADDRINUSE':
      return new StartError(`${portOption}: ${where} is already in use${o.retry ? ' (another agent still stopping? --listen-retry waits for it)' : ''}`)
    case 'EADDRNOTAVAIL':
      return new ConfigError(hostOption, `${host} is not an address of this host`)
    case 'ENOTFOUND':
      return new ConfigError(hostOption, `cannot resolve "${host}": not an IP address, and no such host name`)
    case 'EACCES':
    case 'EPERM':
      if ('port' in a) return new ConfigError(portOption, `permission denied for ${where}${a.port > 0 && a.port < 1024 ? ' (ports below 1024 need privileges)' : ''}`)
      return new ConfigError(hostOption, `cannot listen on ${where}: permission denied`)
    case 'EEXIST':
    case 'ENOENT':
    case 'ENOTDIR':
      if ('path' in a) return new ConfigError(hostOption, `cannot listen on ${where}: ${e.code === 'EEXIST' ? `${a.path} exists and is not a socket` : describeFsError(e, a.path)}`)
      break
  }
  return new StartError(`${hostOption}: cannot listen on ${where}: ${e.message ?? String(err)}`)
}
