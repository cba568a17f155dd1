// The log intake: HAProxy's log stream as a second way in for the compact
// profile, next to SPOP. HAProxy sends one RFC 5424 record per request to a
// log target (haproxy/haproxy-compact-log.cfg), fire and forget: no request
// ever waits for the agent, and an agent that is down, slow or stopped
// costs HAProxy nothing but the records it loses. This module owns only the
// transport and the parsing; the record goes through the same code path as
// the SPOE compact message (tracing/compact.ts: applyCompactRecord).
//
// Listeners: UDP, TCP (syslog over TCP: HAProxy's `ring` forwarders) and
// unix datagram sockets, any number of each. Bounded: the size of one record
// (--log-max-record), TCP connections (--log-max-connections), what a TCP
// stream buffers (one record at most), the UDP and unix receive buffers
// (--log-receive-buffer; the kernel drops beyond, counted from
// /proc/net/udp). Each bad record is counted by reason and logged, at most
// one line per reason and 10 s.

import { chmodSync, chownSync, existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import type { Logger } from 'pino'
import { applyCompactRecord } from '../../tracing/compact.js'
import type { TraceStore } from '../../tracing/trace-store.js'
import { bump } from '../../util/counters.js'
import { LogLimiter } from '../../util/log-limiter.js'
import { formatLogAddress, type LogAddress } from './address.js'
import { type FrameError, SyslogFrames } from './framing.js'
import { readLogRecord } from './record.js'
import { LogIntakeStats } from './stats.js'
import { parseSyslog } from './syslog.js'
import { UNIX_DGRAM_MISSING, type UnixDgramSocket, unixDgram, unixDgramAlive } from './unix-dgram.js'

export { formatLogAddress, type LogAddress, parseLogAddress, LOG_ADDRESS_HELP } from './address.js'
export { LogIntakeStats } from './stats.js'

export interface LogIntakeLimits {
  /** Bytes of one record at most (header, structured data and message). */
  maxRecordBytes: number
  /** TCP connections at most, over every TCP listener. */
  maxConnections: number
  /** SO_RCVBUF asked for the UDP and unix datagram sockets (the kernel may cap it: net.core.rmem_max). */
  receiveBufferBytes: number
  /** Milliseconds a TCP stream rests after a read that emptied its socket (0: none). See onConnection. */
  readPauseMs: number
}

export const DEFAULT_LOG_INTAKE_LIMITS: LogIntakeLimits = {
  maxRecordBytes: 64 * 1024,
  maxConnections: 64,
  receiveBufferBytes: 4 * 1024 * 1024,
  readPauseMs: 10,
}

export interface LogIntakeOptions {
  addresses: readonly LogAddress[]
  store: TraceStore
  logger: Logger
  limits?: Partial<LogIntakeLimits>
  /** Permissions and owner of unix sockets (--unix-mode, --unix-owner), as for the SPOP socket. */
  socketMode?: number | null
  socketOwner?: { uid: number; gid: number } | null
}

/**
 * A read at least this long says that more is waiting: the next one follows
 * at once instead of after a rest. Node.js reads at most 64 KiB at once, and
 * the kernel may hand over somewhat less while more is queued (63,488 bytes
 * of a 600 KB backlog on loopback); records trickling in at moderate rates
 * come in reads of a few KB.
 */
export const BACKLOG_READ_BYTES = 32 * 1024

/** Where one listener is bound (the port is the real one when 0 was asked). */
export type BoundLogAddress = LogAddress & { receiveBufferBytes?: number }

const HINTS: Record<string, string> = {
  not_rfc5424: 'log record is not RFC 5424: give the log line `format rfc5424`',
  bad_sd: 'log record has malformed structured data',
  no_log_format:
    'HAProxy logs only "Connect from" lines: the frontend has no log format, so no request sends its record (add `option httplog` or a log-format)',
  truncated: "log record was cut short: raise the log line's `len` (and the ring's `maxlen`)",
  too_large: 'log record is larger than --log-max-record: dropped',
  bad_frame: 'TCP log stream is neither octet-counted nor LF-terminated syslog: connection closed',
  bad_version: 'compact log record of an unknown version (v=): is the agent older than the HAProxy configuration?',
  bad_context: 'compact log record with an invalid traceparent',
  bad_time: 'compact log record without valid start and end times',
}

export class LogIntake {
  readonly stats = new LogIntakeStats()
  readonly limits: LogIntakeLimits
  private readonly limiter = new LogLimiter()
  private readonly udp: UdpSocket[] = []
  private readonly tcp: Server[] = []
  private readonly unix: Array<{ socket: UnixDgramSocket; path: string }> = []
  private readonly conns = new Set<Socket>()
  private bound: BoundLogAddress[] = []
  private closed = false
  constructor(private readonly opts: LogIntakeOptions) {
    this.limits = { ...DEFAULT_LOG_INTAKE_LIMITS, ...opts.limits }
  }

  /** Where the listeners are bound, once listen() resolved. */
  get addresses(): readonly BoundLogAddress[] {
    return this.bound
  }

  /** Binds every listener; on any failure, closes those already bound and throws. */
  async listen(): Promise<readonly BoundLogAddress[]> {
    try {
      for (const a of this.opts.addresses) this.bound.push(await this.listenOne(a))
    } catch (err) {
      await this.close()
      throw err
    }
    for (const a of this.bound) {
      this.opts.logger.info({ listen: formatLogAddress(a), receiveBufferBytes: a.receiveBufferBytes }, 'listening for HAProxy log records')
      if (a.receiveBufferBytes !== undefined && a.receiveBufferBytes < this.limits.receiveBufferBytes) {
        this.opts.logger.warn(
          { listen: formatLogAddress(a), asked: this.limits.receiveBufferBytes, got: a.receiveBufferBytes },
          'the kernel capped the receive buffer (net.core.rmem_max): bursts may be dropped, counted in spoa_tracer_log_records_dropped_total{by="kernel"}',
        )
      }
    }
    return this.bound
  }

  private listenOne(a: LogAddress): Promise<BoundLogAddress> {
    if (a.transport === 'udp') return this.listenUdp(a)
    if (a.transport === 'tcp') return this.listenTcp(a)
    return this.listenUnix(a.path)
  }

  private listenUdp(a: LogAddress & { transport: 'udp' }): Promise<BoundLogAddress> {
    const socket = createSocket({ type: a.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: this.limits.receiveBufferBytes })
    this.udp.push(socket)
    return new Promise((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(a.port, a.host, () => {
        socket.off('error', reject)
        socket.on('error', (err) => this.warn('socket_error', { err: err.message, listen: formatLogAddress(a) }, 'log intake socket error'))
        socket.on('message', (msg) => this.onRecord(msg))
        // The kernel's answer, which may be less than asked (and Linux doubles it for its own bookkeeping).
        const got = socket.getRecvBufferSize()
        resolve({ ...a, port: socket.address().port, receiveBufferBytes: got })
      })
    })
  }

  private listenTcp(a: LogAddress & { transport: 'tcp' }): Promise<BoundLogAddress> {
    const server = createServer({ noDelay: true }, (s) => this.onConnection(s))
    this.tcp.push(server)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: a.host, port: a.port }, () => {
        server.off('error', reject)
        const addr = server.address()
        resolve({ ...a, port: addr !== null && typeof addr === 'object' ? addr.port : a.port })
      })
    })
  }

  private async listenUnix(path: string): Promise<BoundLogAddress> {
    const Socket = unixDgram()
    if (Socket === null) throw new Error(`log intake unix:${path}: ${UNIX_DGRAM_MISSING}`)
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw Object.assign(new Error(`log intake unix:${path}: exists and is not a socket`), { code: 'EEXIST' })
      if (await unixDgramAlive(Socket, path)) {
        throw Object.assign(new Error(`log intake unix:${path}: another process receives on it`), { code: 'EADDRINUSE' })
      }
      unlinkSync(path)
    }
    const socket = new Socket()
    socket.on('error', (err) => this.warn('socket_error', { err: err.message, listen: `unix:${path}` }, 'log intake socket error'))
    try {
      socket.bind(path)
    } catch (err) {
      socket.close()
      throw new Error(`log intake unix:${path}: ${(err as Error).message}`)
    }
    this.unix.push({ socket, path })
    // Whoever can write to the socket can inject spans: its permissions are the access control.
    if (this.opts.socketOwner) chownSync(path, this.opts.socketOwner.uid, this.opts.socketOwner.gid)
    if (this.opts.socketMode !== undefined && this.opts.socketMode !== null) chmodSync(path, this.opts.socketMode)
    socket.setRecvBufferSize(this.limits.receiveBufferBytes)
    socket.on('data', (buf) => {
      if (buf.length > 0) this.onRecord(buf)
    })
    return { transport: 'unix', path, receiveBufferBytes: socket.getRecvBufferSize() }
  }

  private onConnection(socket: Socket): void {
    if (this.closed || this.conns.size >= this.limits.maxConnections) {
      this.stats.tcpConnectionsRejected++
      this.warn('connection_cap', { maxConnections: this.limits.maxConnections }, 'log intake TCP connection refused: --log-max-connections reached')
      socket.destroy()
      return
    }
    this.conns.add(socket)
    this.stats.tcpConnectionsTotal++
    this.stats.tcpConnectionsOpen++
    const frames = new SyslogFrames(
      this.limits.maxRecordBytes,
      (record) => this.onRecord(record),
      (reason) => this.reject(reason),
    )
    const pauseMs = this.limits.readPauseMs
    let longBefore = false
    socket.on('data', (chunk: Buffer) => {
      this.stats.tcpReads++
      if (!frames.push(chunk)) return socket.destroy()
      // Once the socket is empty, read again only after a rest: the records
      // that arrive meanwhile wait in the kernel and come in one read, where
      // reading as they come costs a wake-up, a read, a stream event and a
      // timer each (HAProxy's ring sends about one record per write at
      // moderate rates). Nothing waits on this: a record is a finished
      // request. A long read, or the read right after one, says a backlog is
      // waiting (the kernel may hand over a short piece of it): no rest, so
      // that the rest never caps how fast a stream is drained. While the agent rests,
      // the kernel holds the records (and HAProxy's ring, when the socket's
      // window is full; HAProxy then writes fewer, larger chunks).
      // A paused net.Socket still reads into Node.js's buffer until 16 KiB
      // wait there. A rest that took nothing from the socket (highWaterMark
      // 1) took many more records per read, yet cost HAProxy more at 100%
      // sampling (docs/BENCHMARKS.md): not kept.
      const long = chunk.length >= BACKLOG_READ_BYTES
      if (pauseMs > 0 && !long && !longBefore && !this.closed) {
        this.stats.tcpRests++
        socket.pause()
        setTimeout(() => socket.resume(), pauseMs).unref()
      } else if (long && !this.closed) {
        // In a backlog, one read per turn of the event loop: the trees of
        // this read are encoded (the export queue's setImmediate pass) before
        // the next read makes more. Reading on at once kept several reads'
        // spans alive across young-generation collections, which promoted
        // them: more RSS and old-generation GC.
        socket.pause()
        setImmediate(() => socket.resume())
      }
      longBefore = long
    })
    socket.on('error', () => {}) // a reset by HAProxy (reload, stop) is normal
    socket.once('close', () => {
      if (frames.end()) this.reject('truncated')
      this.conns.delete(socket)
      this.stats.tcpConnectionsOpen--
    })
  }

  /** One record (a datagram or a TCP frame): parsed, then the compact record's one code path. */
  onRecord(buf: Buffer): void {
    const stats = this.stats
    stats.records++
    if (buf.length > this.limits.maxRecordBytes) return this.reject('too_large')
    const r = parseSyslog(buf.toString('utf8'))
    switch (r.kind) {
      case 'untraced':
        stats.untraced++
        return
      case 'dropped':
        stats.haproxyDropped += r.count
        this.warn('haproxy_dropped', { count: r.count }, 'HAProxy dropped log records: its ring was full (agent slow or down)')
        return
      case 'bad':
        return this.reject(r.reason)
    }
    const rec = readLogRecord(r.params)
    if ('error' in rec) return this.reject(rec.error)
    const outcome = applyCompactRecord(this.opts.store, rec.fields, null, rec.uniqueId)
    if (outcome === 'traced') stats.traced++
    else if (outcome === 'sampled_out') stats.sampledOut++
    else {
      // Counted by the tracing layer too (messages rejected, compact_<reason>); logged here with the intake's hint.
      bump(stats.rejected, outcome)
      this.warn(outcome, {}, HINTS[outcome]!)
    }
  }

  private reject(reason: FrameError | 'not_rfc5424' | 'bad_sd' | 'truncated' | 'no_log_format' | 'bad_version'): void {
    bump(this.stats.rejected, reason)
    this.warn(reason, {}, HINTS[reason]!)
  }

  private warn(key: string, obj: object, msg: string): void {
    const suppressed = this.limiter.allow(key)
    if (suppressed < 0) return
    this.opts.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }

  /**
   * Datagrams the kernel dropped on our UDP sockets because their receive
   * buffer was full (the `drops` column of /proc/net/udp, Linux): the agent
   * could not keep up with a burst. 0 where /proc is not readable.
   */
  kernelDrops(): number {
    const ports = new Set(this.bound.filter((a) => a.transport === 'udp').map((a) => (a as { port: number }).port))
    if (ports.size === 0) return 0
    let n = 0
    for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
      let text: string
      try {
        text = readFileSync(file, 'utf8')
      } catch {
        continue
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/)
        const port = parseInt(f[1]?.split(':')[1] ?? '', 16)
        if (ports.has(port) && f.length >= 13) n += Number(f[12]) || 0
      }
    }
    return n
  }

  /** Stops receiving; records already received have been applied (nothing is buffered but a partial TCP record). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const s of this.udp) s.close()
    for (const { socket, path } of this.unix) {
      socket.close()
      try {
        unlinkSync(path)
      } catch {
        // Already gone.
      }
    }
    for (const c of this.conns) c.destroy()
    await Promise.all(this.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }
}
