// --unix-owner user[:group] into numeric ids, by name (from /etc/passwd and
// /etc/group) or number.

import { readFileSync } from 'node:fs'
import { ConfigError } from '../util/config-error.js'

export function resolveOwner(option: string, spec: string): { uid: number; gid: number } {
  const [user, group] = spec.trim().split(':') as [string, string | undefined]
  const lookup = (file: string, name: string, gidField: boolean): { id: number; gid: number } | null => {
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      return null
    }
    for (const line of text.split('\n')) {
      const f = line.split(':')
      if (f[0] === name && f[2] !== undefined) return { id: Number(f[2]), gid: Number(gidField ? f[3] : f[2]) }
    }
    return null
  }
  const u = /^\d+$/.test(user) ? { id: Number(user), gid: Number.NaN } : lookup('/etc/passwd', user, true)
  if (u === null) throw new ConfigError(option, `unknown user "${user}"`)
  let gid = u.gid
  if (group !== undefined && group !== '') {
    const g = /^\d+$/.test(group) ? { id: Number(group), gid: 0 } : lookup('/etc/group', group, false)
    if (g === null) throw new ConfigError(option, `unknown group "${group}"`)
    gid = g.id
  }
  if (!Number.isInteger(gid)) throw new ConfigError(option, `a numeric user needs a group: ${user}:GROUP`)
  return { uid: u.id, gid }
}
