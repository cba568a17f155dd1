// --metrics-address: `[host:]port`, `[v6-host]:port` or `unix:/path` into a
// ListenAddress. A bare port means loopback: the endpoint tells whoever can
// reach it how busy the proxy is, so listening wider must be asked for by
// naming the host (0.0.0.0:9464). `off` disables it (over a config file).

import type { ListenAddress } from '../agent/index.js'
import { ConfigError } from '../util/config-error.js'

const USAGE = 'expected [host:]port (a bare port listens on 127.0.0.1), [ipv6]:port, unix:/path or off'

function port(name: string, raw: string, whole: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) throw new ConfigError(name, `${USAGE}; bad port in "${whole}"`)
  return Number(raw)
}

/** null = disabled. Throws a ConfigError naming `name` on anything else it cannot read. */
export function parseMetricsAddress(name: string, value: unknown): ListenAddress | null {
  const s = String(value).trim()
  if (s === '' || s.toLowerCase() === 'off') return null
  if (s.startsWith('unix:')) {
    if (s.length <= 5) throw new ConfigError(name, `${USAGE}; got "${s}"`)
    return { path: s.slice(5) }
  }
  if (/^\d+$/.test(s)) return { host: '127.0.0.1', port: port(name, s, s) }
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([^:]*)$/.exec(s)
  if (v6) return { host: v6[1]!, port: port(name, v6[2]!, s) }
  const colon = s.lastIndexOf(':')
  const host = s.slice(0, colon)
  // ":9464" means "every interface" to some exporters; here the host must be said.
  if (colon <= 0 || host.includes(':') || /\s/.test(host)) throw new ConfigError(name, `${USAGE}; got "${s}"`)
  return { host, port: port(name, s.slice(colon + 1), s) }
}

/** For log lines and error messages. */
export function formatAddress(a: ListenAddress): string {
  if ('path' in a) return `unix:${a.path}`
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}
