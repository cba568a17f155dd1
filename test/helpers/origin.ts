// A small HTTP origin for end-to-end tests: answers every request with 200 (or
// ?status=NNN) and a JSON body, and records the headers it received (to check
// propagation) and when it received and answered each request, in epoch
// microseconds (its own "server span", to check that HAProxy's spans contain it).

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'

export interface Origin {
  port: number
  requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders; receivedUs: number; respondedUs: number }>
  close(): Promise<void>
}

export async function startOrigin(opts: { delayMs?: number } = {}): Promise<Origin> {
  const requests: Origin['requests'] = []
  const nowUs = (): number => (performance.timeOrigin + performance.now()) * 1000
  const server: Server = createServer((req, res) => {
    const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, receivedUs: nowUs(), respondedUs: 0 }
    requests.push(entry)
    req.resume()
    // ?status=NNN picks the status code, for error-path tests.
    const status = Number(/[?&]status=(\d{3})/.exec(req.url ?? '')?.[1] ?? 200)
    const reply = (): void => {
      entry.respondedUs = nowUs()
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ok: true, url: req.url }))
    }
    // ?delay=NNN (ms) makes this one request slow, for timing tests.
    const delay = Number(/[?&]delay=(\d+)/.exec(req.url ?? '')?.[1] ?? opts.delayMs ?? 0)
    if (delay > 0) setTimeout(reply, delay)
    else reply()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
