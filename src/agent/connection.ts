// One SPOP connection: the state machine between HAProxy's frames and the
// NotifyHandler. Sockets are only touched here and in server.ts.
//
//   hello ──HAPROXY-HELLO──▶ ready ──HAPROXY-DISCONNECT / error / shutdown──▶ closing ──▶ closed
//     │  (healthcheck: AGENT-HELLO, then close)          │
//     └─────────────── any protocol error ───────────────┴─▶ AGENT-DISCONNECT{status}, close
//
// Every protocol error is a SpopError carrying its status; onError() is the
// one place that turns an error into an AGENT-DISCONNECT. A close or reset
// from HAProxy without a DISCONNECT is a normal close (HAProxy 3.x does it).
// ACKs go back on this socket, in completion order, each within the
// negotiated max-frame-size (HAProxy cannot take fragments: an answer that
// would not fit loses its last, least important actions). Outgoing frames are
// appended to one per-connection buffer and leave in a single write() at the
// end of each incoming chunk (or of the tick, for handlers that answered
// asynchronously): every frame whole, and no per-ACK Buffer or writev entry.

import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import {
  agentHello,
  cursor,
  decodeFrame,
  disconnectFrame,
  disconnectInfo,
  writeAck,
  writeFrame,
  Writer,
  type DisconnectFrame,
  type FragmentFrame,
  type Frame,
  FrameFlag,
  FrameReader,
  FrameType,
  invalid,
  isAbort,
  isFin,
  LENGTH_PREFIX_SIZE,
  MAX_DISCONNECT_MESSAGE,
  payloadOffset,
  type Message,
  readMessages,
  SpopError,
  Status,
  STATUS_MESSAGES,
  truncateUtf8,
  type Action,
  type Uint64,
} from '../spop/index.js'
import type { LogLimiter } from '../util/log-limiter.js'
import type { NotifyHandler } from './handler.js'
import { type AgentLimits, type Negotiated, negotiate } from './handshake.js'
import { bump } from '../util/counters.js'
import type { AgentStats } from './stats.js'

export interface ConnectionOptions {
  handler: NotifyHandler
  limits: AgentLimits
  logger: Logger
  stats: AgentStats
  limiter: LogLimiter
  /** Largest fragmented NOTIFY payload reassembled (HAProxy 2.x only). */
  maxReassembledSize: number
}

export interface ConnectionTimeouts {
  /** From accept to a complete HAPROXY-HELLO. */
  helloMs: number
  /** From the first byte of a frame to its last: a stalled or trickling peer is cut off. */
  frameMs: number
  /** No frame at all for this long (0 = never; HAProxy manages its idle connections itself). */
  idleMs: number
  /** After our AGENT-DISCONNECT, how long the peer may keep its end open. */
  closeGraceMs: number
}

type State = 'hello' | 'ready' | 'closing' | 'closed'

const NO_ACTIONS: Action[] = []
/** Where HAPROXY-DISCONNECT statuses SPOE.txt does not define are counted (/metrics says "other"). */
const OTHER_STATUS = -1
const QUIET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED'])

interface Reassembly {
  streamId: Uint64
  frameId: Uint64
  parts: Buffer[]
  size: number
  /** We aborted it (ACK with ABORT): fragments HAProxy sent before it saw that are dropped. */
  discarding: boolean
}

let nextId = 1

export class Connection {
  readonly id = nextId++
  readonly socket: Socket
  state: State = 'hello'
  negotiated: Negotiated | null = null
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>

  private readonly handler: NotifyHandler
  private readonly opts: ConnectionOptions
  private readonly log: Logger
  private readonly stats: AgentStats
  private readonly reader: FrameReader
  private engineId: string | null = null
  private inflight = 0
  private draining = false
  private frag: Reassembly | null = null
  /** Frames waiting for the next flush. */
  private readonly out = new Writer(512)
  private inData = false
  private flushQueued = false
  /** performance.now() when the chunk being processed arrived: the start of its frames' ACK latency. */
  private chunkAt = 0
  private readonly openedAt = Date.now()
  private lastFrameAt = this.openedAt
  private partialSince = 0
  private closingSince = 0
  private resolveClosed!: () => void

  constructor(socket: Socket, opts: ConnectionOptions) {
    this.socket = socket
    this.opts = opts
    this.handler = opts.handler
    this.stats = opts.stats
    this.log = opts.logger.child({ conn: this.id })
    this.reader = new FrameReader(opts.limits.maxFrameSize)
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))

    socket.setNoDelay(true)
    socket.on('data', this.onData)
    socket.on('error', this.onSocketError)
    socket.on('end', this.onEnd)
    socket.on('close', this.onClose)
    socket.on('drain', () => socket.resume())
    this.stats.connectionsOpen++
    this.stats.connectionsTotal++
    this.log.debug({ remote: socket.remoteAddress ?? socket.localAddress ?? 'unix' }, 'connection opened')
  }

  /** NOTIFY frames whose handler has not returned yet on this connection. */
  get pending(): number {
    return this.inflight
  }

  private readonly onData = (chunk: Buffer): void => {
    const socket = this.socket
    this.inData = true
    this.chunkAt = performance.now()
    try {
      this.reader.push(chunk, this.onFrame)
    } catch (err) {
      this.onError(err)
    } finally {
      this.inData = false
      this.flush()
    }
    if (this.reader.midFrame) {
      if (this.partialSince === 0) this.partialSince = Date.now()
    } else {
      this.partialSince = 0
    }
    // HAProxy reads its ACKs; a peer that does not must not make us buffer without bound.
    if (socket.writableNeedDrain) socket.pause()
  }

  private readonly onFrame = (body: Buffer): void => {
    // The frame deadline is per frame: one that completes restarts it, so a
    // busy stream whose every read ends inside the next frame is not cut off.
    this.partialSince = 0
    const f = decodeFrame(body)
    this.lastFrameAt = Date.now()
    if (f.type === 'notify' && this.state === 'ready') {
      if (this.frag !== null) this.endDiscard(f)
      this.dispatch(f.messages, f.streamId, f.frameId, body.length, body, payloadOffset(body))
      return
    }
    bump(this.stats.framesIn, f.type)
    if (this.state === 'hello') return this.onHelloState(f)
    if (this.state !== 'ready') return // closing: HAProxy ignores frames after a DISCONNECT; so do we
    switch (f.type) {
      case 'fragment':
        return this.onFragment(f)
      case 'haproxy-disconnect':
        return this.onHaproxyDisconnect(f)
      case 'unknown':
        // SPOE.txt: unknown frames "may be silently skipped or trigger an error"; HAProxy skips them too.
        this.stats.unknownFrames++
        this.limitedLog('unknown-frame', 'warn', { frameType: f.wireType }, 'skipped a frame of unknown type')
        return
      case 'haproxy-hello':
        throw invalid('unexpected HAPROXY-HELLO after the handshake')
      default:
        throw invalid(`unexpected ${f.type.toUpperCase()} frame from HAProxy`)
    }
  }

  private onHelloState(f: Frame): void {
    if (f.type === 'haproxy-disconnect') return this.onHaproxyDisconnect(f)
    if (f.type !== 'haproxy-hello') {
      throw invalid(`expected HAPROXY-HELLO, got ${f.type === 'unknown' ? `frame type ${f.wireType}` : f.type}`)
    }
    if (!isFin(f) || f.streamId !== 0 || f.frameId !== 0) {
      throw invalid('HAPROXY-HELLO must have FIN set and stream-id and frame-id 0')
    }
    const n = negotiate(f.kv, this.opts.limits)
    this.negotiated = n
    this.engineId = n.engineId
    this.send(agentHello(n))
    if (n.healthcheck) {
      // `option spop-check`: HAProxy validates the AGENT-HELLO and closes; so may we.
      this.stats.healthchecks++
      this.log.debug('health check answered')
      this.beginClosing()
      return
    }
    this.stats.helloCompleted++
    this.state = 'ready'
    this.reader.maxFrameSize = n.maxFrameSize
    this.log.debug(
      { engineId: n.engineId, offered: n.offered, capabilities: n.capabilities, maxFrameSize: n.maxFrameSize },
      'handshake done',
    )
  }

  private dispatch(messages: Message[], streamId: Uint64, frameId: Uint64, size: number, frame: Buffer, messagesAt: number): void {
    const stats = this.stats
    stats.notifyReceived++
    stats.messagesReceived += messages.length
    let out: Action[] | Promise<Action[]>
    try {
      out = this.handler(messages, { engineId: this.engineId, streamId, frameId, size, frame, messagesAt })
    } catch (err) {
      this.handlerFailed(err)
      out = NO_ACTIONS
    }
    const arrived = this.chunkAt
    if (Array.isArray(out)) {
      this.ack(streamId, frameId, out, arrived)
      return
    }
    this.inflight++
    stats.inflight++
    out
      .then(
        (actions) => this.ack(streamId, frameId, actions, arrived),
        (err: unknown) => {
          this.handlerFailed(err)
          this.ack(streamId, frameId, NO_ACTIONS, arrived)
        },
      )
      .finally(() => {
        this.inflight--
        stats.inflight--
        if (this.draining && this.inflight === 0) this.disconnect(Status.NORMAL, 'normal')
      })
  }

  private ack(streamId: Uint64, frameId: Uint64, actions: readonly Action[], arrived: number): void {
    if (this.state !== 'ready' || !this.socket.writable) return // the peer is gone or we said goodbye
    const start = this.out.pos
    try {
      writeAck(this.out, streamId, frameId, actions)
    } catch (err) {
      // An action HAProxy would choke on (bad scope, bad value) never reaches the wire.
      this.handlerFailed(err)
      writeAck(this.out, streamId, frameId, NO_ACTIONS)
    }
    const max = this.negotiated!.maxFrameSize
    if (this.out.pos - start - LENGTH_PREFIX_SIZE > max) this.fitAck(start, streamId, frameId, actions, max)
    this.stats.acksSent++
    this.stats.ackLatencyUs.observe((performance.now() - arrived) * 1000)
    if (!this.inData) this.queueFlush()
  }

  /**
   * The ACK just written at `start` exceeds max-frame-size, which HAProxy
   * would refuse (2.6 with status 3, 3.x with 9, failing every event on the
   * connection), and it cannot take fragments. Handlers list actions most
   * important first: the last ones go until the frame fits (an ACK without
   * actions always does), counted and logged.
   */
  private fitAck(start: number, streamId: Uint64, frameId: Uint64, actions: readonly Action[], max: number): void {
    let kept = actions.length
    do {
      this.out.pos = start
      writeAck(this.out, streamId, frameId, actions.slice(0, --kept))
    } while (kept > 0 && this.out.pos - start - LENGTH_PREFIX_SIZE > max)
    const dropped = actions.length - kept
    this.stats.acksTrimmed++
    this.stats.ackActionsDropped += dropped
    this.limitedLog(
      'ack-too-big',
      'warn',
      { maxFrameSize: max, actions: actions.length, dropped, dropNames: actions.slice(kept).map((a) => a.name) },
      'ACK would exceed max-frame-size: its last (least important) variables were left out',
    )
  }

  private handlerFailed(err: unknown): void {
    this.stats.handlerErrors++
    this.limitedLog('handler-error', 'error', { err }, 'NOTIFY handler failed; answered with an empty ACK')
  }

  private onFragment(f: FragmentFrame): void {
    if (!this.negotiated?.capabilities.includes('fragmentation')) {
      throw new SpopError('ERR_SPOP_FRAGMENTATION', Status.FRAG_NOT_SUPPORTED)
    }
    if (f.wireType === FrameType.NOTIFY) {
      if (this.frag !== null) this.endDiscard(f)
      this.stats.fragmentedNotify++
      this.frag = { streamId: f.streamId, frameId: f.frameId, parts: [], size: 0, discarding: false }
      this.appendFragment(this.frag, f.payload)
      return
    }
    if (f.wireType !== FrameType.UNSET) throw invalid(`fragmented frame of type ${f.wireType} from HAProxy`)
    const frag = this.frag
    if (frag === null) {
      // 2.6 aborts with ids we may never have seen a first fragment for; nothing to drop.
      if (isAbort(f)) return
      throw new SpopError('ERR_SPOP_FRAMEID_NOTFOUND', Status.FRAMEID_NOTFOUND, 'continuation of no fragmented frame')
    }
    if (frag.streamId !== f.streamId || frag.frameId !== f.frameId) throw interlaced(frag, f)
    if (frag.discarding) {
      // Sent before HAProxy read our ACK/ABORT; its last fragment (FIN) ends them.
      if (isFin(f)) this.frag = null
      return
    }
    if (isAbort(f)) {
      // SPOE.txt 3.2.3: HAProxy gave up on this NOTIFY (2.6: its event timed
      // out or its stream ended mid-transfer). Drop it, and send no ACK.
      this.frag = null
      this.stats.fragmentsAborted++
      this.log.debug({ streamId: f.streamId, frameId: f.frameId, bytes: frag.size }, 'fragmented NOTIFY aborted by HAProxy')
      return
    }
    if (!this.appendFragment(frag, f.payload)) {
      if (isFin(f)) this.frag = null
      return
    }
    if (!isFin(f)) return
    this.frag = null
    const payload = Buffer.concat(frag.parts, frag.size)
    this.dispatch(readMessages(cursor(payload)), frag.streamId, frag.frameId, frag.size, payload, 0)
  }

  /**
   * Adds a fragment; false if the NOTIFY grew beyond the reassembly bound.
   * Then the agent aborts that one transfer (SPOE.txt 3.2.3, "ACK/ABORT"):
   * HAProxy fails that event alone (set-on-error 4) and stops sending its
   * fragments, where an AGENT-DISCONNECT would fail every event in flight
   * on the connection.
   */
  private appendFragment(frag: Reassembly, payload: Buffer): boolean {
    frag.size += payload.length
    if (frag.size > this.opts.maxReassembledSize) {
      frag.parts = []
      frag.discarding = true
      this.stats.fragmentsRefused++
      this.limitedLog(
        'fragments-too-big',
        'warn',
        { streamId: frag.streamId, frameId: frag.frameId, limit: this.opts.maxReassembledSize },
        `fragmented NOTIFY larger than ${this.opts.maxReassembledSize} bytes: aborted (ACK with ABORT), its messages dropped`,
      )
      this.send({ type: 'ack', flags: FrameFlag.FIN | FrameFlag.ABORT, streamId: frag.streamId, frameId: frag.frameId, actions: [] })
      return false
    }
    frag.parts.push(Buffer.from(payload)) // a copy: the fragment is a view of a socket chunk
    return true
  }

  /**
   * A new NOTIFY while a fragmented one is pending: an error (SPOE.txt: all
   * fragments of a payload share its ids), unless we aborted the pending one
   * and HAProxy has moved on without sending its last fragment.
   */
  private endDiscard(f: { streamId: Uint64; frameId: Uint64 }): void {
    if (!this.frag!.discarding) throw interlaced(this.frag!, f)
    this.frag = null
  }

  private onHaproxyDisconnect(f: DisconnectFrame): void {
    const { status, message } = disconnectInfo(f.kv)
    // The status is the peer's to choose (any 64-bit value): counters and
    // log-limiter keys take the codes SPOE.txt defines, and one key for all
    // others, or a peer could grow both maps without bound.
    const key = STATUS_MESSAGES[status] !== undefined ? status : OTHER_STATUS
    bump(this.stats.disconnectsReceived, key)
    // 0 is a soft-stop and 2 the 2.6 idle timeout: routine. Anything else is worth a line.
    if (status === Status.NORMAL || status === Status.TIMEOUT) {
      this.log.debug({ status, message }, 'HAProxy disconnected')
    } else {
      this.limitedLog(`haproxy-disconnect-${key}`, 'warn', { status, message }, 'HAProxy disconnected with an error')
    }
    this.disconnect(Status.NORMAL, 'normal')
  }

  /** The one place an error becomes an AGENT-DISCONNECT. */
  private onError(err: unknown): void {
    if (err instanceof SpopError) {
      bump(this.stats.protocolErrors, err.code)
      this.limitedLog(
        err.code,
        'warn',
        { code: err.code, status: err.status, state: this.state, remote: this.socket.remoteAddress },
        `protocol error: ${err.message}`,
      )
      this.disconnect(err.status, err.message)
      return
    }
    bump(this.stats.protocolErrors, 'ERR_INTERNAL')
    this.limitedLog('internal', 'error', { err }, 'internal error on an SPOP connection')
    this.disconnect(Status.UNKNOWN, 'an unknown error occurred')
  }

  /** Sends AGENT-DISCONNECT and closes our side. No more frames are read or written after it. */
  disconnect(status: number, message: string): void {
    if (this.state === 'closing' || this.state === 'closed') return
    // 2.6 rejects a DISCONNECT message longer than 255 bytes; it may quote the peer's text.
    const text = truncateUtf8(message, MAX_DISCONNECT_MESSAGE)
    bump(this.stats.disconnectsSent, status)
    this.send(disconnectFrame('agent-disconnect', status, text))
    this.beginClosing()
  }

  private beginClosing(): void {
    this.flush()
    this.state = 'closing'
    this.closingSince = Date.now()
    this.reader.stop()
    this.frag = null
    this.socket.end()
  }

  /**
   * Graceful stop: let the handlers of frames already received finish and
   * their ACKs go out, then AGENT-DISCONNECT (status 0). Resolves when closed.
   */
  shutdown(): Promise<void> {
    if (this.state === 'hello') this.destroy()
    else if (this.state === 'ready') {
      this.draining = true
      if (this.inflight === 0) this.disconnect(Status.NORMAL, 'normal')
    }
    return this.closed
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** Called about once a second by the server: enforces the connection timeouts. */
  checkTimeouts(now: number, t: ConnectionTimeouts): void {
    if (this.state === 'closing') {
      if (now - this.closingSince > t.closeGraceMs) this.destroy()
      return
    }
    let what: string | null = null
    if (this.state === 'hello' && now - this.openedAt > t.helloMs) what = 'no HAPROXY-HELLO'
    else if (this.partialSince !== 0 && now - this.partialSince > t.frameMs) what = 'frame incomplete'
    else if (t.idleMs > 0 && this.inflight === 0 && now - this.lastFrameAt > t.idleMs) what = 'idle'
    if (what === null) return
    this.stats.timeouts++
    if (what !== 'idle') {
      bump(this.stats.protocolErrors, 'ERR_SPOP_TIMEOUT')
      this.limitedLog(`timeout-${what}`, 'warn', { state: this.state, remote: this.socket.remoteAddress }, `timeout: ${what}`)
    }
    this.disconnect(Status.TIMEOUT, `a timeout occurred: ${what}`)
  }

  /** Queues a non-ACK frame (HELLO, DISCONNECT) for the next flush. */
  private send(f: Frame): void {
    if (!this.socket.writable) return
    bump(this.stats.framesOut, f.type)
    writeFrame(this.out, f)
    if (!this.inData) this.queueFlush()
  }

  private queueFlush(): void {
    if (this.flushQueued) return
    this.flushQueued = true
    process.nextTick(this.flushTick)
  }

  private readonly flushTick = (): void => {
    this.flushQueued = false
    this.flush()
  }

  /** Writes every queued frame in one write. */
  private flush(): void {
    const out = this.out
    if (out.pos === 0) return
    if (this.socket.writable) this.socket.write(out.take())
    out.reset()
  }

  private readonly onSocketError = (err: NodeJS.ErrnoException): void => {
    if (err.code && QUIET_ERRORS.has(err.code)) {
      this.log.debug({ code: err.code }, 'connection reset')
      return
    }
    this.limitedLog(`socket-${err.code ?? 'error'}`, 'warn', { err }, 'socket error')
  }

  private readonly onEnd = (): void => {
    // HAProxy 3.x closes pooled connections with no DISCONNECT: a normal close.
    if (this.state === 'ready' || this.state === 'hello') {
      this.stats.closedWithoutDisconnect++
      this.log.debug({ pending: this.inflight }, 'closed by HAProxy without DISCONNECT')
      this.state = 'closing'
      this.closingSince = Date.now()
      this.reader.stop()
    }
  }

  private readonly onClose = (): void => {
    if (this.state !== 'closing') this.stats.closedWithoutDisconnect++
    this.state = 'closed'
    this.reader.stop()
    this.frag = null
    this.stats.connectionsOpen--
    this.log.debug('connection closed')
    this.resolveClosed()
  }

  private limitedLog(key: string, level: 'warn' | 'error', obj: object, msg: string): void {
    const suppressed = this.opts.limiter.allow(key)
    if (suppressed < 0) return
    this.log[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }
}

function interlaced(frag: Reassembly, f: { streamId: Uint64; frameId: Uint64 }): SpopError {
  return new SpopError(
    'ERR_SPOP_INTERLACED',
    Status.INTERLACED_FRAMES,
    `frame ${f.streamId}/${f.frameId} while reassembling ${frag.streamId}/${frag.frameId}`,
  )
}
