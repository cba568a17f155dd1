// The HAProxy side of SPOP, for tests and the soak benchmark: the
// HAPROXY-HELLO HAProxy sends, and FakeHaproxy, which speaks SPOP over a real
// socket with the project's own codec and hands back every frame the agent
// sends, decoded, in order. (The load generator, bench/spop-loadgen.ts, has
// its own cheaper per-frame path, and uses the HELLO from here.) Every wait
// is bounded.

import { connect, type Socket } from 'node:net'
import {
  decodeFrame,
  disconnectFrame,
  encodeFrame,
  type Frame,
  FrameReader,
  type Message,
  tv,
  type NamedValue,
} from '../src/spop/index.js'
import type { ListenAddress } from '../src/agent/index.js'

export interface HelloOptions {
  capabilities?: string
  maxFrameSize?: number
  engineId?: string | null
  healthcheck?: boolean
  versions?: string
}

/** HAProxy's HAPROXY-HELLO: version 2.0, pipelining and async, a fixed engine-id unless given (null: none). */
export function haproxyHello(o: HelloOptions = {}): Frame {
  const kv: NamedValue[] = [
    { name: 'supported-versions', ...tv.string(o.versions ?? '2.0') },
    { name: 'max-frame-size', ...tv.uint32(o.maxFrameSize ?? 16380) },
    { name: 'capabilities', ...tv.string(o.capabilities ?? 'pipelining,async') },
  ]
  if (o.healthcheck) kv.push({ name: 'healthcheck', ...tv.bool(true) })
  else if (o.engineId !== null) kv.push({ name: 'engine-id', ...tv.string(o.engineId ?? 'b9b7a0f4-9ad3-4b53-a1d5-3f2d6c1b2e01') })
  return { type: 'haproxy-hello', flags: 1, streamId: 0, frameId: 0, kv }
}

/** A connected socket to the agent (no delay); rejects after `ms`. */
export function connectRaw(addr: ListenAddress, ms = 2000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in addr ? connect({ path: addr.path }) : connect({ host: addr.host, port: addr.port })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`connect: no answer within ${ms} ms`))
    }, ms)
    s.once('connect', () => {
      clearTimeout(timer)
      s.setNoDelay(true)
      resolve(s)
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

export class FakeHaproxy {
  readonly socket: Socket
  private readonly frames: Frame[] = []
  private readonly waiters: Array<() => void> = []
  private readonly reader = new FrameReader(1 << 20)
  private ended = false
  readonly closed: Promise<void>

  private constructor(socket: Socket) {
    this.socket = socket
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('data', (chunk) => {
      this.reader.push(chunk, (body) => this.frames.push(decodeFrame(body)))
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
  }

  static async connect(addr: ListenAddress, ms = 2000): Promise<FakeHaproxy> {
    return new FakeHaproxy(await connectRaw(addr, ms))
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  send(frame: Frame | Buffer): void {
    this.socket.write(Buffer.isBuffer(frame) ? frame : encodeFrame(frame))
  }

  /** The next frame from the agent; rejects after `ms` or if the connection closes first. */
  async next(ms = 2000): Promise<Frame> {
    const deadline = Date.now() + ms
    for (;;) {
      const f = this.frames.shift()
      if (f) return f
      if (this.ended) throw new Error('connection closed before the next frame')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no frame within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Resolves true if no frame arrives within `ms`. */
  async silent(ms: number): Promise<boolean> {
    try {
      await this.next(ms)
      return false
    } catch {
      return this.frames.length === 0
    }
  }

  /** Waits for the socket to close; rejects after `ms`. */
  async waitClosed(ms = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.closed,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms))),
    ])
    clearTimeout(timer)
  }

  /** HAPROXY-HELLO, and the agent's answer. */
  async hello(o: HelloOptions = {}): Promise<Frame> {
    this.send(haproxyHello(o))
    return this.next()
  }

  notify(streamId: number | bigint, frameId: number | bigint, messages: Message[]): void {
    this.send({ type: 'notify', flags: 1, streamId, frameId, messages })
  }

  disconnect(status = 0, message = 'normal'): void {
    this.send(disconnectFrame('haproxy-disconnect', status, message))
  }

  destroy(): void {
    this.socket.destroy()
  }
}
