// The SPOP load generator: plays HAProxy 3.x against an agent. It opens N
// connections, does the HELLO handshake on each (offering pipelining), then
// keeps `depth` NOTIFY frames outstanding per connection, sending the next one
// as soon as an ACK arrives (a closed loop: as fast as the agent ACKs), and
// measures ACKs per second and per-frame ACK latency over a window that
// follows a warm-up. Library (runLoadgen) and the `loadgen` command.
//
// It shares a small machine with the agent it measures, so the per-frame path
// is kept far cheaper than the agent's:
//   - NOTIFY payloads are encoded once (notify-template.ts); a frame is a
//     fresh header (11 to 15 bytes, length prefix included), a copy of the
//     template and a 12-byte unique-id patch;
//   - the refills triggered by one incoming chunk leave in ONE socket write;
//   - an ACK is parsed by hand: length, type 103, FIN, two varints; the
//     payload is skipped. Only other frames go through the full decoder;
//   - latency takes one clock read per batch sent and one per chunk received,
//     and lands in a fixed-size histogram.
//
// Like HAProxy 3.x, each NOTIFY gets a fresh stream-id (a per-connection
// counter) and frame-id 1; every ACK must match an outstanding (sid, fid).
// Each of the `depth` slots of a connection is one "stream" playing the flow:
// the NOTIFYs of one request in order, then a new request with a new unique-id.

import { randomUUID } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { LatencyHistogram } from '../harness/latency-histogram.js'
import { fmt } from '../harness/report.js'
import { haproxyHello } from '../harness/spop-client.js'
import { sleep } from '../harness/wait.js'
import { DataType, decodeFrame, disconnectInfo, encodeFrame, type Frame, type KvList, kvGet, writeVarint } from '../src/spop/index.js'
import { type Args, type BenchCommand, bool, num, type OptionSpec, str, UsageError } from './cli.js'
import { defaultFlow, type Flow, writeIdSuffix } from './notify-template.js'

export type Target = { host: string; port: number } | { path: string }

export interface LoadgenHooks {
  /** Called synchronously when the measured window opens (after the warm-up). */
  onWindowStart?: () => void
  /** Called synchronously when it closes, before the outstanding frames are drained. */
  onWindowEnd?: () => void
}

export interface LoadgenOptions {
  target: Target
  connections: number
  /** NOTIFY frames outstanding per connection (HAProxy 3.x allows 20 streams per SPOP connection). */
  depth: number
  durationS: number
  warmupS: number
  /** The NOTIFYs of one request, cycled (see notify-template.ts). */
  flow: Flow
  /** max-frame-size announced in the HAPROXY-HELLO (HAProxy's default: 16380). */
  maxFrameSize?: number
  connectTimeoutMs?: number
  /** After the window, how long outstanding ACKs may take before the connections are cut. */
  drainTimeoutMs?: number
  hooks?: LoadgenHooks
}

export interface LatencySummary {
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  mean: number
}

export interface LoadgenErrors {
  total: number
  /** Frames other than ACK after the handshake (or other than AGENT-HELLO during it). */
  unexpectedFrames: number
  /** AGENT-DISCONNECT frames, by status code. */
  disconnects: Record<string, number>
  /** ACKs whose (sid, fid) matched no outstanding NOTIFY, or ACKs without FIN. */
  unknownAcks: number
  /** Connections closed by the agent (or reset) before the end of the run. */
  closes: number
  /** Undecodable input: bad lengths, truncated varints, malformed frames. */
  protocol: number
  /** NOTIFY frames still not ACKed when the run ended (after the drain timeout). */
  unanswered: number
  /** The first few error messages, for diagnosis. */
  samples: string[]
}

export interface LoadgenResult {
  target: string
  connections: number
  depth: number
  flowLength: number
  /** Average size of a NOTIFY frame on the wire, length prefix included. */
  notifyBytes: number
  windowS: number
  /** ACKs received in the window. */
  frames: number
  framesPerSec: number
  /** Flows played per second: framesPerSec / flowLength. */
  requestsPerSec: number
  /** NOTIFY frames written in the window. */
  sent: number
  /** Average ACKs per socket read and NOTIFYs per socket write, in the window. */
  batching: { acksPerRead: number; notifyPerWrite: number }
  /** ACK latency in microseconds, for the ACKs received in the window. */
  latencyUs: LatencySummary
  errors: LoadgenErrors
  loadgenCpu: {
    userUs: number
    systemUs: number
    usPerFrame: number
    /** Percent of one core. */
    utilisation: number
    /** Event-loop utilisation (0..1): near 1 means the load generator itself is the limit. */
    elu: number
  }
}

const WARMUP = 0
const MEASURE = 1
const DRAIN = 2
const DONE = 3

const ACK = 103
const NOTIFY = 3
/** Type, flags, a stream-id of up to 5 bytes, frame-id 1: the largest header we write, length included. */
const HEADER_MAX = 4 + 1 + 4 + 5 + 1
/** Stream-ids stay below 2^31, like HAProxy 3.x's. */
const MAX_SID = 0x7fffffff

/** What all connections of one run share: the phase and the counters of the window. */
class RunState {
  phase = WARMUP
  acks = 0
  sent = 0
  bytes = 0
  /** Socket reads and writes in the window: frames per syscall is what keeps the load generator cheap. */
  reads = 0
  writes = 0
  readonly hist = new LatencyHistogram()
  nextRequest = 1
  live = 0
  private onAllDead: (() => void) | null = null
  readonly allDead = new Promise<void>((resolve) => (this.onAllDead = resolve))
  readonly errors: LoadgenErrors = {
    total: 0,
    unexpectedFrames: 0,
    disconnects: {},
    unknownAcks: 0,
    closes: 0,
    protocol: 0,
    unanswered: 0,
    samples: [],
  }

  error(kind: 'unexpectedFrames' | 'unknownAcks' | 'closes' | 'protocol', msg: string): void {
    this.errors[kind]++
    this.note(msg)
  }

  note(msg: string): void {
    this.errors.total++
    if (this.errors.samples.length < 5) this.errors.samples.push(msg)
  }

  connectionDied(): void {
    if (--this.live === 0) this.onAllDead?.()
  }
}

/** One SPOP connection playing HAProxy. */
class LoadConnection {
  private readonly socket: Socket
  private state: 'hello' | 'ready' | 'closed' = 'hello'
  private readonly flow: Flow
  private readonly depth: number
  private readonly run: RunState
  private readonly offeredMaxFrameSize: number
  private maxFrameSize: number
  private readonly frameBytes: number
  private carry: Buffer | null = null

  // Outstanding NOTIFYs, a ring indexed by stream-id: sid (0 = free), send time, stream slot.
  private readonly mask: number
  private readonly ringSid: Float64Array
  private readonly ringTime: Float64Array
  private readonly ringStream: Int32Array
  private nextSid = 1
  private outstanding = 0

  // Per stream slot: the flow step to send next and the request number (the unique-id suffix).
  private readonly step: Int32Array
  private readonly request: Float64Array
  /** Slots to refill, filled while one chunk is parsed, sent in one write after it. */
  private readonly refill: Int32Array
  private refillCount = 0

  private settleHello: ((err?: Error) => void) | null = null
  private onDrained: (() => void) | null = null
  /** Started and not closed: counted in RunState.live. */
  private live = false

  constructor(socket: Socket, o: LoadgenOptions, run: RunState) {
    this.socket = socket
    this.flow = o.flow
    this.depth = o.depth
    this.run = run
    this.offeredMaxFrameSize = o.maxFrameSize ?? 16380
    this.maxFrameSize = this.offeredMaxFrameSize
    this.frameBytes = Math.max(...o.flow.map((t) => t.payload.length)) + HEADER_MAX
    // Sized well beyond the depth, and a sid whose slot is taken is skipped, so
    // an ACK that lags far behind the others never collides with a newer frame.
    const ring = 1 << Math.ceil(Math.log2(Math.max(256, o.depth * 16)))
    this.mask = ring - 1
    this.ringSid = new Float64Array(ring)
    this.ringTime = new Float64Array(ring)
    this.ringStream = new Int32Array(ring)
    this.step = new Int32Array(o.depth)
    this.request = new Float64Array(o.depth)
    this.refill = new Int32Array(o.depth)
    socket.setNoDelay(true)
    socket.on('data', this.onData)
    socket.on('error', (err) => this.run.note(`socket error: ${err.message}`))
    socket.on('close', this.onClose)
  }

  static open(index: number, o: LoadgenOptions, run: RunState): Promise<LoadConnection> {
    const timeoutMs = o.connectTimeoutMs ?? 5000
    return new Promise((resolve, reject) => {
      const t = o.target
      const socket = 'path' in t ? connect({ path: t.path }) : connect({ host: t.host, port: t.port })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`connection ${index}: no AGENT-HELLO within ${timeoutMs} ms`))
      }, timeoutMs)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        socket.destroy()
        reject(new Error(`connection ${index}: ${err.message}`))
      }
      socket.once('error', fail)
      socket.once('connect', () => {
        socket.off('error', fail)
        const conn = new LoadConnection(socket, o, run)
        conn.settleHello = (err) => {
          clearTimeout(timer)
          conn.settleHello = null
          if (err) fail(err)
          else resolve(conn)
        }
        socket.write(encodeFrame(haproxyHello({ maxFrameSize: conn.offeredMaxFrameSize, capabilities: 'pipelining', engineId: randomUUID() })))
      })
    })
  }

  /** Fills every stream slot: the closed loop starts. */
  start(): void {
    this.live = true
    this.run.live++
    for (let s = 0; s < this.depth; s++) {
      this.step[s] = 0
      this.request[s] = this.run.nextRequest++
      this.refill[s] = s
    }
    this.refillCount = this.depth
    this.sendBatch()
  }

  /** Resolves when no NOTIFY is outstanding any more (call once the phase is DRAIN). */
  drained(): Promise<void> {
    if (this.outstanding === 0 || this.state === 'closed') return Promise.resolve()
    return new Promise((resolve) => (this.onDrained = resolve))
  }

  close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed'
      this.socket.end()
    }
    return new Promise((resolve) => {
      if (this.socket.closed) return resolve()
      const timer = setTimeout(() => {
        this.socket.destroy()
        resolve()
      }, 1000)
      this.socket.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  destroy(): void {
    this.state = 'closed'
    this.socket.destroy()
  }

  /** NOTIFY frames written and not ACKed yet. */
  get pending(): number {
    return this.outstanding
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === 'closed') return // we are leaving: late frames are nobody's business
    let buf = chunk
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk])
      this.carry = null
    }
    const run = this.run
    const measuring = run.phase === MEASURE
    if (measuring) run.reads++
    const now = performance.now()
    const n = buf.length
    let pos = 0
    while (n - pos >= 4) {
      const len = buf.readUInt32BE(pos)
      if (len < 7 || len > this.maxFrameSize) {
        run.error('protocol', `frame length ${len} outside [7, ${this.maxFrameSize}]`)
        this.destroy()
        return
      }
      const end = pos + 4 + len
      if (end > n) break
      if (buf[pos + 4] === ACK && this.state === 'ready') {
        this.onAck(buf, pos, end, now, measuring)
      } else {
        // May fail the connection (a DISCONNECT, a bad AGENT-HELLO): then stop reading.
        if (!this.onOtherFrame(buf.subarray(pos + 4, end))) return
      }
      pos = end
    }
    // A partial frame: keep a copy (it is small) rather than pin the whole chunk.
    if (pos < n) this.carry = Buffer.from(buf.subarray(pos))
    if (this.refillCount > 0) this.sendBatch()
    if (this.onDrained !== null && this.outstanding === 0) {
      this.onDrained()
      this.onDrained = null
    }
  }

  private onAck(buf: Buffer, pos: number, end: number, now: number, measuring: boolean): void {
    const run = this.run
    // Flags: the FIN bit is the low bit of the last flag byte.
    const fin = (buf[pos + 8]! & 1) !== 0
    let p = pos + 9
    let sid = buf[p++]!
    if (sid >= 240) {
      let scale = 16
      let b: number
      do {
        if (p >= end) return run.error('protocol', 'truncated stream-id in an ACK')
        b = buf[p++]!
        sid += b * scale
        scale *= 128
      } while (b >= 128)
    }
    if (p >= end) return run.error('protocol', 'truncated frame-id in an ACK')
    const fid = buf[p]! // frame-id 1 is one byte; anything else is not ours
    const slot = sid & this.mask
    if (!fin || fid !== 1 || this.ringSid[slot] !== sid) {
      return run.error('unknownAcks', `ACK sid=${sid} fid=${fid}${fin ? '' : ' without FIN'} matches no NOTIFY`)
    }
    this.ringSid[slot] = 0
    this.outstanding--
    if (measuring) {
      run.acks++
      run.hist.record((now - this.ringTime[slot]!) * 1000)
    }
    if (run.phase >= DRAIN) return
    const s = this.ringStream[slot]!
    if (++this.step[s]! === this.flow.length) {
      this.step[s] = 0
      this.request[s] = run.nextRequest++
    }
    this.refill[this.refillCount++] = s
  }

  /** Writes one NOTIFY per slot queued in `refill`, all in one socket write. */
  private sendBatch(): void {
    const count = this.refillCount
    this.refillCount = 0
    if (this.state !== 'ready') return
    const out = Buffer.allocUnsafe(count * this.frameBytes)
    const t = performance.now()
    const { ringSid, ringTime, ringStream, mask, flow } = this
    let pos = 0
    for (let i = 0; i < count; i++) {
      const s = this.refill[i]!
      const tpl = flow[this.step[s]!]!
      let sid = this.nextSid
      while (ringSid[sid & mask] !== 0) sid++
      this.nextSid = sid + 1 >= MAX_SID ? 1 : sid + 1
      const slot = sid & mask
      ringSid[slot] = sid
      ringTime[slot] = t
      ringStream[slot] = s
      const start = pos
      out[pos + 4] = NOTIFY
      out[pos + 5] = 0
      out[pos + 6] = 0
      out[pos + 7] = 0
      out[pos + 8] = 1 // FIN
      pos = writeVarint(out, pos + 9, sid)
      out[pos++] = 1 // frame-id
      const payloadAt = pos
      out.set(tpl.payload, pos)
      pos += tpl.payload.length
      out.writeUInt32BE(pos - start - 4, start)
      const req = this.request[s]!
      for (const at of tpl.idPatches) writeIdSuffix(out, payloadAt + at, req)
    }
    this.outstanding += count
    if (this.run.phase === MEASURE) {
      this.run.sent += count
      this.run.bytes += pos
      this.run.writes++
    }
    this.socket.write(out.subarray(0, pos))
  }

  /**
   * Everything but a well-formed ACK: the handshake, DISCONNECTs, surprises.
   * Rare, so fully decoded. Returns false if the connection was failed.
   */
  private onOtherFrame(body: Buffer): boolean {
    const run = this.run
    let f: Frame
    try {
      f = decodeFrame(body)
    } catch (err) {
      run.error('protocol', `undecodable frame: ${(err as Error).message}`)
      return this.fail(new Error(`undecodable frame: ${(err as Error).message}`))
    }
    if (f.type === 'agent-disconnect') {
      const { status, message } = disconnectInfo(f.kv)
      run.errors.disconnects[status] = (run.errors.disconnects[status] ?? 0) + 1
      run.note(`AGENT-DISCONNECT ${status}: ${message}`)
      return this.fail(new Error(`AGENT-DISCONNECT ${status}: ${message}`))
    }
    if (this.state === 'hello' && f.type === 'agent-hello') {
      const problem = this.checkAgentHello(f.kv)
      if (problem !== null) return this.fail(new Error(`bad AGENT-HELLO: ${problem}`))
      this.state = 'ready'
      this.settleHello?.()
      return true
    }
    run.error('unexpectedFrames', `unexpected ${f.type === 'unknown' ? `frame type ${f.wireType}` : f.type} frame`)
    if (this.state === 'hello') return this.fail(new Error(`expected AGENT-HELLO, got ${f.type}`))
    return true
  }

  /** Null if the AGENT-HELLO is acceptable to HAProxy and to this run, else why not. */
  private checkAgentHello(kv: KvList): string | null {
    const version = kvGet(kv, 'version')
    if (version?.type !== DataType.STRING || version.value.trim() !== '2.0') return 'version is not "2.0"'
    const mfs = kvGet(kv, 'max-frame-size')
    if (!mfs || mfs.type < DataType.INT32 || mfs.type > DataType.UINT64 || typeof mfs.value !== 'number') {
      return 'no integer max-frame-size'
    }
    if (mfs.value < 256 || mfs.value > this.offeredMaxFrameSize) return `max-frame-size ${mfs.value} out of range`
    this.maxFrameSize = mfs.value
    const biggest = this.frameBytes - HEADER_MAX + 11 // payload + the 7-to-11-byte header this run can need
    if (biggest > mfs.value) return `a NOTIFY of ${biggest} bytes exceeds max-frame-size ${mfs.value}`
    const caps = kvGet(kv, 'capabilities')
    const list = caps?.type === DataType.STRING ? caps.value.split(',').map((c) => c.trim()) : []
    if (this.depth > 1 && !list.includes('pipelining')) return 'pipelining was not accepted (needed for --depth > 1)'
    return null
  }

  private fail(err: Error): false {
    if (this.settleHello) this.settleHello(err)
    this.destroy()
    return false
  }

  private readonly onClose = (): void => {
    if (this.state === 'ready') this.run.error('closes', 'connection closed by the agent')
    this.state = 'closed'
    this.settleHello?.(new Error('connection closed during the handshake'))
    this.onDrained?.()
    if (this.live) {
      this.live = false
      this.run.connectionDied()
    }
  }
}

export function formatTarget(t: Target): string {
  return 'path' in t ? `unix:${t.path}` : `${t.host}:${t.port}`
}

/** `host:port`, `:port`, `[v6]:port` or `unix:/path`. */
export function parseTarget(s: string): Target {
  if (s.startsWith('unix:')) return { path: s.slice(5) }
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s)
  if (!m) throw new UsageError(`--target: expected host:port or unix:/path, got ${s}`)
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) }
}

export async function runLoadgen(o: LoadgenOptions): Promise<LoadgenResult> {
  if (o.connections < 1 || o.depth < 1) throw new RangeError('connections and depth must be at least 1')
  if (o.flow.length === 0) throw new RangeError('empty flow')
  const run = new RunState()
  const opened = await Promise.allSettled(
    Array.from({ length: o.connections }, (_, i) => LoadConnection.open(i, o, run)),
  )
  const conns = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    for (const c of conns) c.destroy()
    throw failed.reason
  }
  try {
    for (const c of conns) c.start()
    await sleep(o.warmupS * 1000, run.allDead)

    run.phase = MEASURE
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    const t0 = performance.now()
    o.hooks?.onWindowStart?.()
    await sleep(o.durationS * 1000, run.allDead)
    run.phase = DRAIN
    const windowMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const elu = performance.eventLoopUtilization(elu0)
    o.hooks?.onWindowEnd?.()

    const drainMs = o.drainTimeoutMs ?? 2000
    await sleep(drainMs, Promise.all(conns.map((c) => c.drained())))
    run.phase = DONE
    const unanswered = conns.reduce((n, c) => n + c.pending, 0)
    if (unanswered > 0) {
      run.errors.unanswered = unanswered
      run.note(`${unanswered} NOTIFY frames not ACKed ${drainMs} ms after the window`)
    }
    await Promise.all(conns.map((c) => c.close()))

    const h = run.hist
    const windowS = windowMs / 1000
    return {
      target: formatTarget(o.target),
      connections: o.connections,
      depth: o.depth,
      flowLength: o.flow.length,
      notifyBytes: run.sent > 0 ? run.bytes / run.sent : o.flow[0]!.payload.length + 11,
      windowS,
      frames: run.acks,
      framesPerSec: run.acks / windowS,
      requestsPerSec: run.acks / windowS / o.flow.length,
      sent: run.sent,
      batching: {
        acksPerRead: run.reads > 0 ? run.acks / run.reads : 0,
        notifyPerWrite: run.writes > 0 ? run.sent / run.writes : 0,
      },
      latencyUs: {
        p50: h.quantile(0.5),
        p90: h.quantile(0.9),
        p99: h.quantile(0.99),
        p999: h.quantile(0.999),
        max: h.max,
        mean: h.mean,
      },
      errors: run.errors,
      loadgenCpu: {
        userUs: cpu.user,
        systemUs: cpu.system,
        usPerFrame: run.acks > 0 ? (cpu.user + cpu.system) / run.acks : 0,
        utilisation: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
        elu: elu.utilization,
      },
    }
  } finally {
    for (const c of conns) c.destroy()
  }
}

// ---- the command ------------------------------------------------------------

/** The load-shaping options, shared with the bare and tracing commands. */
export const LOAD_OPTIONS = {
  connections: { type: 'number', default: 8, describe: 'SPOP connections' },
  depth: { type: 'number', default: 20, describe: 'NOTIFY frames outstanding per connection' },
  duration: { type: 'number', default: 10, describe: 'measured seconds' },
  warmup: { type: 'number', default: 2, describe: 'seconds of load before measuring' },
} as const satisfies OptionSpec

/** The NOTIFY shape of the bare and loadgen commands (the tracing ones replay the 9-span flow). */
export const NOTIFY_OPTIONS = {
  args: { type: 'number', default: 10, describe: 'arguments per message' },
  messages: { type: 'number', default: 1, describe: 'messages per NOTIFY' },
} as const satisfies OptionSpec

/** The load-shaping options shared by the loadgen CLI and bench/bare-agent.ts. */
export interface LoadShape {
  connections: number
  depth: number
  durationS: number
  warmupS: number
  args: number
  messages: number
}

export function loadShape(a: Args): LoadShape {
  return {
    connections: num(a, 'connections', 1),
    depth: num(a, 'depth', 1),
    durationS: num(a, 'duration', 0.1),
    warmupS: num(a, 'warmup', 0),
    args: num(a, 'args', 0),
    messages: num(a, 'messages', 1),
  }
}

export function formatLatency(l: LatencySummary): string {
  return `p50 ${fmt(l.p50)} µs  p90 ${fmt(l.p90)} µs  p99 ${fmt(l.p99)} µs  p99.9 ${fmt(l.p999)} µs  max ${fmt(l.max)} µs`
}

export function formatErrors(e: LoadgenErrors): string {
  if (e.total === 0) return '0'
  const parts = [`${e.total} total`]
  if (e.unexpectedFrames) parts.push(`${e.unexpectedFrames} unexpected frames`)
  if (e.unknownAcks) parts.push(`${e.unknownAcks} unknown ACKs`)
  if (e.closes) parts.push(`${e.closes} closes`)
  if (e.protocol) parts.push(`${e.protocol} protocol`)
  if (e.unanswered) parts.push(`${e.unanswered} unanswered`)
  for (const [status, n] of Object.entries(e.disconnects)) parts.push(`${n} DISCONNECT ${status}`)
  return `${parts.join(', ')} (${e.samples.join('; ')})`
}

export const command: BenchCommand = {
  name: 'loadgen',
  describe: 'the SPOP load generator alone, against an agent already running',
  options: {
    target: { type: 'string', default: '127.0.0.1:12345', describe: 'host:port or unix:/path of the agent' },
    ...LOAD_OPTIONS,
    ...NOTIFY_OPTIONS,
    json: { type: 'boolean', describe: 'print one JSON line' },
  },
  async run(a) {
    const shape = loadShape(a)
    const target = parseTarget(str(a, 'target')!)
    const flow = defaultFlow(shape.args, shape.messages)
    const r = await runLoadgen({ ...shape, target, flow })
    if (bool(a, 'json')) {
      console.log(JSON.stringify(r))
    } else {
      console.log(
        `spop-loadgen: ${r.target}, ${r.connections} connections x depth ${r.depth}, ` +
          `NOTIFY of ${shape.messages} x ${shape.args} args (${fmt(r.notifyBytes)} bytes), ` +
          `${fmt(r.windowS, 2)} s after ${shape.warmupS} s warm-up`,
      )
      console.log(`frames/s      ${fmt(r.framesPerSec)}  (${fmt(r.frames)} ACKs, ${fmt(r.sent)} NOTIFYs sent)`)
      console.log(`ACK latency   ${formatLatency(r.latencyUs)}`)
      console.log(
        `batching      ${fmt(r.batching.acksPerRead, 1)} ACKs per read, ${fmt(r.batching.notifyPerWrite, 1)} NOTIFYs per write`,
      )
      console.log(`errors        ${formatErrors(r.errors)}`)
      const c = r.loadgenCpu
      console.log(
        `loadgen CPU   ${fmt(c.usPerFrame, 2)} µs/frame, ${fmt(c.utilisation, 1)}% of a core, ` +
          `event loop ${fmt(c.elu * 100, 1)}% busy`,
      )
    }
    return r.errors.total === 0 ? 0 : 1
  },
}
