// A small HTTP origin for end-to-end tests: answers every request with 200 and
// a JSON body, and records the headers it received (to check propagation).

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'

export interface Origin {
  port: number
  requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>
  close(): Promise<void>
}

export async function startOrigin(opts: { delayMs?: number } = {}): Promise<Origin> {
  const requests: Origin['requests'] = []
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    req.resume()
    const reply = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ok: true, url: req.url }))
    }
    if (opts.delayMs) setTimeout(reply, opts.delayMs)
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
