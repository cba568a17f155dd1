// The listener: accepts HAProxy's SPOP connections on TCP or a unix socket,
// tracks them, enforces connection timeouts with one sweep a second, and
// stops gracefully (stop accepting, let in-flight frames finish, DISCONNECT,
// wait a bounded time) or at once.

import { chmodSync, chownSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Capability } from '../spop/index.js'
import { LogLimiter } from '../util/log-limiter.js'
import { Connection, type ConnectionTimeouts } from './connection.js'
import type { NotifyHandler } from './handler.js'
import { AgentStats } from './stats.js'
import { removeStaleSocket } from '../util/unix-socket.js'

export type ListenAddress = { host: string; port: number } | { path: string }

export interface AgentServerOptions {
  handler: NotifyHandler
  logger: Logger
  listen: ListenAddress
  backlog?: number
  /** Largest frame accepted; the AGENT-HELLO says min(this, HAProxy's). Default 16384. */
  maxFrameSize?: number
  /** Capabilities offered to HAProxy (intersected with its own). Default: pipelining. */
  capabilities?: readonly Capability[]
  /** Beyond this many open connections new ones are refused (0 = no limit). */
  maxConnections?: number
  maxReassembledSize?: number
  timeouts?: Partial<ConnectionTimeouts>
  stats?: AgentStats
  /** Interval of the rate limit on log lines about bad input. */
  logIntervalMs?: number
  /**
   * Keep retrying an address that is in use for this long (0 = fail at once):
   * a previous agent may still hold the port for a moment while it stops.
   */
  listenRetryMs?: number
  /** Unix socket only: permissions (e.g. 0o660) and owner set right after listen. */
  socketMode?: number
  socketOwner?: { uid: number; gid: number }
}

/** How often a listen on an address in use is tried again (--listen-retry). */
const LISTEN_RETRY_EVERY_MS = 200

export const DEFAULT_TIMEOUTS: ConnectionTimeouts = {
  helloMs: 10_000,
  frameMs: 30_000,
  idleMs: 0,
  closeGraceMs: 5_000,
}

export class AgentServer {
  readonly stats: AgentStats
  private readonly server: Server
  private readonly conns = new Set<Connection>()
  private readonly opts: AgentServerOptions
  private readonly timeouts: ConnectionTimeouts
  private readonly limiter: LogLimiter
  private sweep: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null

  constructor(opts: AgentServerOptions) {
    this.opts = opts
    this.stats = opts.stats ?? new AgentStats()
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts }
    this.limiter = new LogLimiter(opts.logIntervalMs)
    this.server = createServer({ noDelay: true }, this.onConnection)
    // Errors while listening; those of listen() itself are its caller's to report.
    this.server.on('error', (err) => {
      if (this.server.listening) opts.logger.error({ error: err.message }, 'listener error')
    })
  }

  /** Open connections. */
  get connections(): ReadonlySet<Connection> {
    return this.conns
  }

  get listening(): boolean {
    return this.server.listening
  }

  /**
   * Starts listening; resolves with the bound address (a port of 0 picks a
   * free one). An address in use is tried again until listenRetryMs has
   * passed; `signal` ends the wait (a stop requested meanwhile) by rejecting
   * with an AbortError.
   */
  async listen(signal?: AbortSignal): Promise<ListenAddress> {
    const { listen } = this.opts
    const retryMs = this.opts.listenRetryMs ?? 0
    const deadline = Date.now() + retryMs
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted()
      try {
        if ('path' in listen) await removeStaleSocket(listen.path)
        await this.listenOnce()
        break
      } catch (err) {
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        if (!inUse || Date.now() >= deadline) throw err
        if (attempt === 1) this.opts.logger.warn({ listen, retryForMs: retryMs }, 'address in use; trying again until it is free (--listen-retry)')
        await sleep(LISTEN_RETRY_EVERY_MS, undefined, signal ? { signal } : {})
      }
    }
    if ('path' in listen) {
      // Whoever can connect can inject spans: the socket is the access control.
      if (this.opts.socketOwner) chownSync(listen.path, this.opts.socketOwner.uid, this.opts.socketOwner.gid)
      if (this.opts.socketMode !== undefined) chmodSync(listen.path, this.opts.socketMode)
    }
    this.sweep = setInterval(this.checkTimeouts, 1000).unref()
    const addr = this.server.address()
    const bound: ListenAddress =
      addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { path: String(addr) }
    this.opts.logger.info({ listen: bound }, 'listening for SPOP connections')
    return bound
  }

  private listenOnce(): Promise<void> {
    const { listen, backlog } = this.opts
    return new Promise<void>((resolve, reject) => {
      // Both listeners go whichever way it ends: a retried listen adds none.
      const onError = (err: Error): void => {
        this.server.off('listening', onListening)
        reject(err)
      }
      const onListening = (): void => {
        this.server.off('error', onError)
        resolve()
      }
      this.server.once('error', onError)
      this.server.once('listening', onListening)
      if ('path' in listen) this.server.listen({ path: listen.path, backlog })
      else this.server.listen({ host: listen.host, port: listen.port, backlog })
    })
  }

  private readonly onConnection = (socket: Socket): void => {
    const max = this.opts.maxConnections ?? 0
    if (this.closing !== null || (max > 0 && this.conns.size >= max)) {
      this.stats.connectionsRejected++
      socket.destroy()
      return
    }
    const conn = new Connection(socket, {
      handler: this.opts.handler,
      limits: {
        maxFrameSize: this.opts.maxFrameSize ?? 16384,
        capabilities: this.opts.capabilities ?? ['pipelining'],
      },
      logger: this.opts.logger,
      stats: this.stats,
      limiter: this.limiter,
      maxReassembledSize: this.opts.maxReassembledSize ?? 1 << 20,
    })
    this.conns.add(conn)
    void conn.closed.then(() => this.conns.delete(conn))
  }

  /**
   * For work a handler does after its ACK left (the tracing handler's
   * batches): a failure there is counted and logged like a handler that threw.
   */
  handlerFailed(err: unknown): void {
    this.stats.handlerErrors++
    const suppressed = this.limiter.allow('handler-error')
    if (suppressed < 0) return
    this.opts.logger.error(suppressed > 0 ? { err, suppressed } : { err }, 'NOTIFY handler failed after its ACK')
  }

  private readonly checkTimeouts = (): void => {
    const now = Date.now()
    for (const c of this.conns) c.checkTimeouts(now, this.timeouts)
  }

  /**
   * Graceful stop: no new connections; each open one finishes its in-flight
   * frames, then gets AGENT-DISCONNECT (0, normal). Connections still open
   * after `timeoutMs` are destroyed. Runs once; later calls get the same promise.
   */
  close(timeoutMs = 5000): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()))
      const all = Promise.all([...this.conns].map((c) => c.shutdown()))
      let timer: NodeJS.Timeout | undefined
      const expired = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs)
      })
      if ((await Promise.race([all, expired])) === 'timeout') {
        this.opts.logger.warn({ open: this.conns.size }, 'connections still open at the shutdown deadline; closing them')
        for (const c of this.conns) c.destroy()
      }
      clearTimeout(timer)
      if (this.sweep) clearInterval(this.sweep)
      await stopped
    })()
    return this.closing
  }

  /** Immediate stop: every connection is cut. */
  destroy(): void {
    this.closing ??= Promise.resolve()
    this.server.close()
    if (this.sweep) clearInterval(this.sweep)
    for (const c of this.conns) c.destroy()
  }
}
