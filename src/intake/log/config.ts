// The log intake's part of the configuration: its options (--log-intake,
// repeatable, and its bounds), read by src/daemon/cli.ts through one hook so that the
// command line's option table stays the one place options are declared.

import { ConfigError } from '../../util/config-error.js'
import { formatLogAddress, LOG_ADDRESS_HELP, type LogAddress, parseLogAddress } from './address.js'
import { DEFAULT_LOG_INTAKE_LIMITS, type LogIntakeLimits } from './index.js'
import { UNIX_DGRAM_MISSING, unixDgram } from './unix-dgram.js'

export interface LogIntakeConfig extends LogIntakeLimits {
  /** Off (empty) by default: HAProxy's log stream is an opt-in second intake. */
  addresses: LogAddress[]
}

export const DEFAULT_LOG_INTAKE_CONFIG: LogIntakeConfig = { addresses: [], ...DEFAULT_LOG_INTAKE_LIMITS }

export const LOG_INTAKE_OPTIONS = {
  'log-intake': `Also receive the compact profile as HAProxy log records (haproxy/haproxy-compact-log.cfg), repeatable: ${LOG_ADDRESS_HELP} [default: off]`,
  'log-max-record': 'Bytes of one log record at most [default: 65536]',
  'log-max-connections': 'TCP log connections at most [default: 64]',
  'log-receive-buffer': 'Receive buffer of UDP and unix log sockets, bytes (capped by net.core.rmem_max) [default: 4194304]',
} as const

function integer(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : Number(String(v).trim())
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `expected an integer from ${min} to ${max}, got "${String(v)}"`)
  return n
}

/** Applies one option of LOG_INTAKE_OPTIONS; false when `key` is not one of them. */
export function applyLogIntakeOption(c: LogIntakeConfig, key: string, v: unknown, name: string): boolean {
  switch (key) {
    case 'log-intake': {
      const list = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((x) => x.trim()).filter(Boolean)
      c.addresses = list.map((x) => parseLogAddress(name, x))
      // Checked here, not at listen time: a missing package does not come back by restarting (exit status 2).
      if (c.addresses.some((a) => a.transport === 'unix') && unixDgram() === null) throw new ConfigError(name, UNIX_DGRAM_MISSING)
      const seen = new Set<string>()
      for (const a of c.addresses) {
        const k = a.transport === 'unix' ? a.path : `${a.transport}:${a.host}:${a.port}`
        if ((a.transport === 'unix' || a.port !== 0) && seen.has(k)) throw new ConfigError(name, `${formatLogAddress(a)} is given twice`)
        seen.add(k)
      }
      return true
    }
    case 'log-max-record':
      c.maxRecordBytes = integer(name, v, 480, 1 << 20)
      return true
    case 'log-max-connections':
      c.maxConnections = integer(name, v, 1, 65535)
      return true
    case 'log-receive-buffer':
      c.receiveBufferBytes = integer(name, v, 4096, 1 << 30)
      return true
  }
  return false
}
