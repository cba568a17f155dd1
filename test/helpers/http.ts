// A GET on a fresh TCP connection (no keep-alive reuse), bounded in time.
// Tests that count lost requests use it: a reused keep-alive connection that
// the server closes at the same moment is the client's race, not a loss.

import { type IncomingHttpHeaders, request } from 'node:http'

export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close', ...headers }, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}
