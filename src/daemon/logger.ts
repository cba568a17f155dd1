// Logging with pino: JSON lines by default, human-readable when the output is
// a terminal (or --log-format pretty); to stdout (stderr while the console
// exporter prints traces on stdout) or to a file opened in the
// C agent's modes (-l [MODE:]FILE: a = append, w = truncate; a capital
// letter = line-buffered, i.e. written synchronously). reopen() serves
// SIGHUP and logrotate. A missing directory is not created: a mistyped path
// is reported, not silently made (the packaging creates /var/log/spoa-tracer).

import { closeSync, openSync } from 'node:fs'
import { pino, type DestinationStream, type Level, type Logger } from 'pino'
import pretty from 'pino-pretty'
import { ConfigError } from '../util/config-error.js'
import { describeFsError } from '../util/file-check.js'
import { LogLimiter } from '../util/log-limiter.js'

export type LogFormat = 'json' | 'pretty'

export interface LogOptions {
  level: Level | 'silent'
  format: LogFormat
  /** null: a standard stream, `stream`. */
  file: LogFile | null
  /** Without a file: stdout (the default), or stderr when stdout carries something else (the console exporter). */
  stream?: 'stdout' | 'stderr'
}

export interface LogFile {
  path: string
  /** 'a' appends, 'w' truncates at start. */
  mode: 'a' | 'w'
  /** Written synchronously, line by line (MODE in capitals). */
  lineBuffered: boolean
}

const LOGFILE_USAGE = 'expected [MODE:]FILE with MODE a, w, A or W'

/** Parses -l/--logfile "[MODE:]FILE". One character and a colon is a MODE: "x:/path" is refused, not taken for a file named "x:/path". */
export function parseLogFile(spec: string): LogFile {
  const m = /^([^/.]):(.*)$/s.exec(spec)
  if (m && !/^[aAwW]$/.test(m[1]!)) throw new ConfigError('--logfile', `unknown MODE "${m[1]}" in "${spec}"; ${LOGFILE_USAGE}`)
  const mode = m ? m[1]! : 'a'
  const path = m ? m[2]! : spec
  if (path === '') throw new ConfigError('--logfile', LOGFILE_USAGE)
  return { path, mode: mode.toLowerCase() as 'a' | 'w', lineBuffered: mode === mode.toUpperCase() }
}

/** -d LEVEL: a pino level name, or the C agent's numbers (0 info, 1 debug, 2 and up trace). */
export function parseLogLevel(v: string | number): Level | 'silent' {
  const names = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  const s = String(v).trim().toLowerCase()
  if (names.includes(s)) return s as Level | 'silent'
  if (/^\d+$/.test(s)) {
    const n = Number(s)
    return n === 0 ? 'info' : n === 1 ? 'debug' : 'trace'
  }
  throw new ConfigError('--debug', `expected a level (${names.join(', ')}) or 0, 1, 2; got "${v}"`)
}

export interface LogHandle {
  logger: Logger
  /** Reopens the log file (after logrotate moved it); a no-op on stdout. */
  reopen(): void
  /** Waits (at most `timeoutMs`) until every line written so far is on disk, an async write in flight included. */
  flush(timeoutMs?: number): Promise<void>
  /** Best effort for a crash path: writes out buffered lines synchronously. */
  flushSync(): void
}

/**
 * Throws a ConfigError (one line: the file and why) when the log file cannot
 * be opened: checked synchronously here, where pino would fail later and
 * asynchronously.
 */
export function createLogger(o: LogOptions): LogHandle {
  let dest: DestinationStream & {
    reopen?: () => void
    flushSync?: () => void
    flush?: (cb: (err?: Error) => void) => void
    on?: (event: 'error', cb: (err: Error) => void) => void
  }
  if (o.file) {
    const { path } = o.file
    try {
      // 'w' truncates once, at start; every reopen appends to the (new) file.
      closeSync(openSync(path, o.file.mode))
    } catch (err) {
      throw new ConfigError('--logfile', `cannot open ${path}: ${describeFsError(err, path)}`)
    }
    dest = pino.destination({ dest: path, sync: o.file.lineBuffered, append: true, mkdir: false })
    // Later trouble (a reopen after the directory went away, a full disk) is said on stderr, never a crash.
    const limiter = new LogLimiter()
    dest.on?.('error', (err) => {
      if (limiter.allow('log-write') >= 0) process.stderr.write(`spoa-tracer: --logfile: cannot write ${path}: ${describeFsError(err, path)}\n`)
    })
  } else {
    dest = pino.destination({ dest: o.stream === 'stderr' ? 2 : 1, sync: true })
  }
  const tty = o.stream === 'stderr' ? process.stderr.isTTY : process.stdout.isTTY
  const out: DestinationStream =
    o.format === 'pretty'
      ? pretty({ destination: dest, colorize: !o.file && tty, translateTime: 'SYS:standard', ignore: 'pid,hostname', sync: true })
      : dest
  const logger = pino({ level: o.level, base: { pid: process.pid } }, out)
  return {
    logger,
    // SonicBoom refuses to reopen a file descriptor (stdout): a SIGHUP there would crash the process.
    reopen: () => {
      if (o.file) dest.reopen?.()
    },
    flush: (timeoutMs = 2000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs)
        const done = (): void => {
          clearTimeout(timer)
          resolve()
        }
        try {
          if (dest.flush) dest.flush(done)
          else done()
        } catch {
          // Not open yet: nothing was written.
          done()
        }
      }),
    flushSync: () => {
      try {
        dest.flushSync?.()
      } catch {
        // Not ready yet, or an async write in flight: nothing more can be done synchronously.
      }
    },
  }
}
