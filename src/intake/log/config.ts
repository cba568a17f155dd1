// The log intake's part of the configuration: its defaults, and the reading
// of --log-intake's address list, which needs to know what this layer can
// listen on. The options themselves are declared with every other one, in
// src/daemon/options.ts.

import { ConfigError } from '../../util/config-error.js'
import { formatLogAddress, type LogAddress, parseLogAddress } from './address.js'
import { DEFAULT_LOG_INTAKE_LIMITS, type LogIntakeLimits } from './index.js'
import { UNIX_DGRAM_MISSING, unixDgram } from './unix-dgram.js'

export interface LogIntakeConfig extends LogIntakeLimits {
  /** Off (empty) by default: HAProxy's log stream is an opt-in second intake. */
  addresses: LogAddress[]
}

export const DEFAULT_LOG_INTAKE_CONFIG: LogIntakeConfig = { addresses: [], ...DEFAULT_LOG_INTAKE_LIMITS }

/** --log-intake: one address, a comma-separated list, or an array of either; none given twice. */
export function parseLogIntakeAddresses(name: string, v: unknown): LogAddress[] {
  const list = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((x) => x.trim()).filter(Boolean)
  const addresses = list.map((x) => parseLogAddress(name, x))
  // Checked here, not at listen time: a missing package does not come back by restarting (exit status 2).
  if (addresses.some((a) => a.transport === 'unix') && unixDgram() === null) throw new ConfigError(name, UNIX_DGRAM_MISSING)
  const seen = new Set<string>()
  for (const a of addresses) {
    const k = a.transport === 'unix' ? a.path : `${a.transport}:${a.host}:${a.port}`
    if ((a.transport === 'unix' || a.port !== 0) && seen.has(k)) throw new ConfigError(name, `${formatLogAddress(a)} is given twice`)
    seen.add(k)
  }
  return addresses
}
