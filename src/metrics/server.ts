// The metrics and health endpoint (--metrics-address, off by default):
// GET /metrics (Prometheus text 0.0.4), /healthz (liveness), /readyz
// (readiness); 404 for any other path, 405 for any other method.
//
// Bounded like the SPOP side: request bodies are never read (a request that
// announces one gets its answer and a closed connection), headers and whole
// requests have short timeouts, connections are capped, and neither the
// server nor its sockets keep the process alive: the agent's life is decided
// by the SPOP listener and the signals, never by a scraper's keep-alive.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { ListenAddress } from '../agent/index.js'
import type { Registry } from 'prom-client'
import { formatAddress } from './address.js'
import { readiness } from './readiness.js'
import { CONTENT_TYPE, renderMetrics, tracerRegistry } from './registry.js'
import type { MetricsSource } from './source.js'
import { removeStaleSocket } from '../util/unix-socket.js'

const TEXT = 'text/plain; charset=utf-8'
const MAX_CONNECTIONS = 32
const HEADERS_TIMEOUT_MS = 5000
const REQUEST_TIMEOUT_MS = 10_000
const KEEP_ALIVE_TIMEOUT_MS = 5000

export interface MetricsServerOptions {
  source: MetricsSource
  logger: Logger
}

export class MetricsServer {
  private readonly server: Server
  private readonly registry: Registry
  private readonly source: MetricsSource
  private readonly logger: Logger
  private bound: ListenAddress | null = null
  private closing: Promise<void> | null = null

  private constructor(opts: MetricsServerOptions) {
    this.source = opts.source
    this.logger = opts.logger
    this.registry = tracerRegistry(opts.source)
    this.server = createServer(
      { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, maxHeaderSize: 8192 },
      this.onRequest,
    )
    this.server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
    this.server.maxConnections = MAX_CONNECTIONS
    this.server.on('connection', (socket: Socket) => socket.unref())
    // Errors while serving; a failed listen is start()'s to report.
    this.server.on('error', (err) => {
      if (this.server.listening) this.logger.error({ error: err.message }, 'metrics endpoint error')
    })
  }

  /** Listens on `listen` (a port of 0 picks a free one); rejects with the address in the message. */
  static async start(listen: ListenAddress, opts: MetricsServerOptions): Promise<MetricsServer> {
    const m = new MetricsServer(opts)
    try {
      if ('path' in listen) await removeStaleSocket(listen.path)
      await new Promise<void>((resolve, reject) => {
        m.server.once('error', reject)
        const done = (): void => {
          m.server.off('error', reject)
          resolve()
        }
        if ('path' in listen) m.server.listen({ path: listen.path }, done)
        else m.server.listen({ host: listen.host, port: listen.port }, done)
      })
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw Object.assign(new Error(`metrics endpoint ${formatAddress(listen)}: ${e.message}`), { code: e.code })
    }
    m.server.unref()
    const addr = m.server.address()
    m.bound = addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { path: String(addr) }
    m.logger.info({ listen: m.bound }, 'metrics endpoint listening: /metrics, /healthz, /readyz')
    return m
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): ListenAddress {
    if (this.bound === null) throw new Error('metrics endpoint not listening')
    return this.bound
  }

  /** Stops listening and cuts every connection, scrapes in progress included. */
  close(): Promise<void> {
    return (this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    }))
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // A body is never read: answer, then close rather than drain it.
    const cl = req.headers['content-length']
    if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) res.shouldKeepAlive = false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'only GET and HEAD\n', { allow: 'GET, HEAD' })
      return
    }
    const path = (req.url ?? '').split('?', 1)[0]
    switch (path) {
      case '/metrics':
        void this.metrics(res)
        return
      case '/healthz':
        reply(res, 200, 'ok\n')
        return
      case '/readyz': {
        const r = readiness(this.source)
        if (r.ready) reply(res, 200, 'ready\n')
        else reply(res, 503, `not ready: ${r.failed.join('; ')}\n`)
        return
      }
      default:
        reply(res, 404, 'not found; try /metrics, /healthz or /readyz\n')
    }
  }

  private async metrics(res: ServerResponse): Promise<void> {
    let body: string
    try {
      body = await renderMetrics(this.registry)
    } catch (err) {
      this.logger.error({ err }, 'cannot collect metrics')
      reply(res, 500, 'cannot collect metrics\n')
      return
    }
    reply(res, 200, body, { 'content-type': CONTENT_TYPE })
  }
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return
  res.writeHead(status, {
    'content-type': TEXT,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(body) // on HEAD, Node sends the headers only
}
