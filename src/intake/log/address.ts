// Where the log intake listens: `udp://HOST:PORT`, `tcp://HOST:PORT` (syslog
// over TCP, octet counting or LF-terminated: HAProxy's `ring` forwarders) or
// `unix:/path` (a unix datagram socket, HAProxy's `log /path`). Hosts are
// literal addresses, IPv6 in brackets; a bare `udp://:PORT` is 127.0.0.1.

import { isIP } from 'node:net'
import { ConfigError } from '../../util/config-error.js'

export type LogAddress =
  | { transport: 'udp'; host: string; port: number }
  | { transport: 'tcp'; host: string; port: number }
  | { transport: 'unix'; path: string }

export const LOG_ADDRESS_HELP = 'udp://HOST:PORT, tcp://HOST:PORT or unix:/path (a unix datagram socket)'

export function parseLogAddress(option: string, value: unknown): LogAddress {
  const s = String(value).trim()
  const bad = (why: string): ConfigError => new ConfigError(option, `${why}: expected ${LOG_ADDRESS_HELP}, got "${s}"`)
  if (s.startsWith('unix:')) {
    const path = s.slice(5).replace(/^\/\/(?=\/)/, '')
    if (!path.startsWith('/')) throw bad('a unix socket needs an absolute path')
    return { transport: 'unix', path }
  }
  const m = /^(udp|tcp):\/\/(?:\[([^\]]+)\]|([^:/]*)):(\d{1,5})$/.exec(s)
  if (m === null) throw bad('not a log intake address')
  const host = m[2] ?? (m[3] === '' ? '127.0.0.1' : m[3]!)
  if (isIP(host) === 0) throw bad(`"${host}" is not an IP address`)
  const port = Number(m[4])
  if (port > 65535) throw bad('the port is above 65535')
  return { transport: m[1] as 'udp' | 'tcp', host, port }
}

export function formatLogAddress(a: LogAddress): string {
  if (a.transport === 'unix') return `unix:${a.path}`
  return `${a.transport}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
}
