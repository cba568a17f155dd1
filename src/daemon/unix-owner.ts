// --unix-owner user[:group] into numeric ids. Names are looked up with
// getent, which asks the system's name service (NSS): /etc/passwd and
// /etc/group, and LDAP, SSSD or systemd users alike, which reading the files
// would miss. Numbers are taken as they are.

import { execFileSync } from 'node:child_process'
import { ConfigError } from '../util/config-error.js'

/** A lookup gives up after this long (a name service that does not answer). */
const GETENT_TIMEOUT_MS = 5000

/** The fields of `key`'s entry in `database`, or null if there is none; throws a one-line Error if the lookup itself fails. */
export type Getent = (database: 'passwd' | 'group', key: string) => string[] | null

/** getent(1): exit status 2 means "no such key". */
export const systemGetent: Getent = (database, key) => {
  let out: string
  try {
    out = execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: GETENT_TIMEOUT_MS })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null }
    if (e.status === 2) return null
    if (e.code === 'ENOENT') throw new Error('getent is not installed (numeric ids need no lookup)')
    if (e.code === 'ETIMEDOUT') throw new Error(`getent gave no answer within ${GETENT_TIMEOUT_MS / 1000} s`)
    throw new Error(`getent ${database} failed${typeof e.status === 'number' ? ` with status ${e.status}` : `: ${e.message}`}`)
  }
  const line = out.split('\n')[0] ?? ''
  return line === '' ? null : line.split(':')
}

/** user[:group]; a user given by name brings its primary group, a numeric one needs the group said. */
export function resolveOwner(option: string, spec: string, getent: Getent = systemGetent): { uid: number; gid: number } {
  const [user, group] = spec.trim().split(':') as [string, string | undefined]
  const lookup = (database: 'passwd' | 'group', what: string, name: string): string[] | null => {
    if (name === '') return null
    try {
      return getent(database, name)
    } catch (err) {
      throw new ConfigError(option, `cannot look up ${what} "${name}": ${(err as Error).message}`)
    }
  }
  let uid: number
  let gid = Number.NaN
  if (/^\d+$/.test(user)) {
    uid = Number(user)
  } else {
    const u = lookup('passwd', 'user', user)
    if (u === null || !/^\d+$/.test(u[2] ?? '') || !/^\d+$/.test(u[3] ?? '')) throw new ConfigError(option, `unknown user "${user}"`)
    uid = Number(u[2])
    gid = Number(u[3])
  }
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) {
      gid = Number(group)
    } else {
      const g = lookup('group', 'group', group)
      if (g === null || !/^\d+$/.test(g[2] ?? '')) throw new ConfigError(option, `unknown group "${group}"`)
      gid = Number(g[2])
    }
  }
  if (!Number.isInteger(gid)) throw new ConfigError(option, `a numeric user needs a group: ${user}:GROUP`)
  return { uid, gid }
}
