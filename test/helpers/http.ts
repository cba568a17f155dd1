// HTTP requests for tests: each on a fresh connection (no keep-alive reuse),
// bounded in time, to a TCP or unix-socket address. Tests that count lost
// requests rely on the fresh connection: a reused keep-alive connection that
// the server closes at the same moment is the client's race, not a loss.

import { type IncomingHttpHeaders, request } from 'node:http'
import type { ListenAddress } from '../../src/agent/index.js'

export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface RequestOptions {
  method?: string
  body?: string
  headers?: Record<string, string>
  timeoutMs?: number
}

export function http(addr: ListenAddress, path: string, opts: RequestOptions = {}): Promise<Response> {
  const timeoutMs = opts.timeoutMs ?? 5000
  const where = 'path' in addr ? { socketPath: addr.path } : { host: addr.host, port: addr.port }
  return new Promise((resolve, reject) => {
    const req = request(
      { ...where, path, method: opts.method ?? 'GET', agent: false, headers: opts.headers, timeout: timeoutMs },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** GET of an http:// URL, with `connection: close`. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<Response> {
  const u = new URL(url)
  return http({ host: u.hostname, port: Number(u.port || 80) }, u.pathname + u.search, {
    headers: { connection: 'close', ...headers },
    timeoutMs,
  })
}
