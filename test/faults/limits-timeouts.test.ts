// Size limits and deadlines against hostile peers: oversized length prefixes
// are refused before anything is buffered; a frame that never completes, a
// byte-a-second trickle (slowloris) and a peer that never says HELLO are cut
// off by absolute deadlines, measured here against their bounds; a busy
// stream whose reads all end mid-frame is NOT cut; a peer that ignores our
// AGENT-DISCONNECT is dropped after the close grace; a peer that floods
// NOTIFYs without reading its ACKs makes the agent stop reading, not buffer.
// test/agent/connection.test.ts has the plain cases (no HELLO, one stalled frame).

import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { AgentServer, type AgentServerOptions, type Connection, type ListenAddress } from '../../src/agent/index.js'
import { disconnectInfo, encodeFrame, type Frame, type FrameReader, kvGet, tv } from '../../src/spop/index.js'
import { bytes } from '../helpers/bytes.js'
import { FakeHaproxy, haproxyHello } from '../../harness/spop-client.js'
import { silentLogger } from '../helpers/logger.js'
import { eventually, sleep } from '../../harness/wait.js'

// The server sweeps its timeouts once a second: a deadline of D ms fires
// between D and D + 1000 ms after it starts. SLACK covers a loaded machine.
const SWEEP_MS = 1000
const SLACK_MS = 500

async function startAgent(t: Test, opts: Partial<AgentServerOptions> = {}): Promise<{ server: AgentServer; addr: ListenAddress }> {
  const server = new AgentServer({ handler: () => [], logger: silentLogger(), listen: { host: '127.0.0.1', port: 0 }, ...opts })
  const addr = await server.listen()
  t.teardown(() => server.destroy())
  return { server, addr }
}

const statusOf = (f: Frame): number | null => (f.type === 'agent-disconnect' ? disconnectInfo(f.kv).status : null)
const kvValue = (f: Frame, key: string): unknown => ('kv' in f ? kvGet(f.kv, key)?.value : undefined)

/** The agent's FrameReader of a connection: private, reached only to check what is buffered. */
const readerOf = (c: Connection): FrameReader => (c as unknown as { reader: FrameReader }).reader

/** A NOTIFY whose body (what the length prefix counts) is exactly `size` bytes. */
function notifyOfSize(size: number, streamId = 1): Buffer {
  const frame = (pad: number): Buffer =>
    encodeFrame({ type: 'notify', flags: 1, streamId, frameId: 1, messages: [{ name: 'm', args: [{ name: 'a', ...tv.string('x'.repeat(pad)) }] }] })
  // The string length varint grows at 240: search the padding that lands exactly.
  for (let pad = 0; pad < size; pad++) if (frame(pad).length - 4 === size) return frame(pad)
  throw new Error(`no NOTIFY of exactly ${size} bytes`)
}

t.test('oversized length prefixes: status 3 at once, nothing buffered', async (t) => {
  const { server, addr } = await startAgent(t)
  const hello = async (maxFrameSize: number): Promise<FakeHaproxy> => {
    const h = await FakeHaproxy.connect(addr)
    const f = await h.hello({ maxFrameSize })
    t.equal(kvValue(f, 'max-frame-size'), maxFrameSize, `max-frame-size ${maxFrameSize} negotiated`)
    return h
  }

  // A frame of exactly max-frame-size is fine: the limit is inclusive.
  const exact = await hello(256)
  exact.send(notifyOfSize(256, 7))
  const ack = await exact.next()
  t.same([ack.type, ack.streamId], ['ack', 7], 'a 256-byte frame under max-frame-size 256 is served')

  // Part of a frame at the limit: held in one buffer of the frame's size, and no more.
  exact.send(notifyOfSize(256).subarray(0, 100))
  t.ok(await eventually(() => [...server.connections].some((c) => readerOf(c).buffered === 96)), 'a partial frame holds exactly what arrived')
  exact.destroy()

  const arrivals = process.memoryUsage().arrayBuffers
  for (const [what, prefix] of [
    ['4 GiB - 1 (0xffffffff)', bytes`ff ff ff ff`],
    ['max-frame-size + 1 (257)', bytes`00 00 01 01`],
  ] as const) {
    const h = await hello(256)
    const sent = performance.now()
    h.send(prefix) // the prefix alone: no body byte ever follows
    const f = await h.next(SWEEP_MS)
    const ms = performance.now() - sent
    t.equal(statusOf(f), 3, `${what}: AGENT-DISCONNECT 3 (frame is too big)`)
    t.ok(ms < 200, `${what}: answered at once (${ms.toFixed(1)} ms), not after waiting for a body or a sweep`)
    await h.waitClosed()
  }
  // Allocating for the announced length would have cost 4 GiB (or thrown).
  const grown = process.memoryUsage().arrayBuffers - arrivals
  t.ok(grown < 1 << 20, `no buffer allocated for the announced length (${grown} bytes of ArrayBuffers grew)`)

  // Before the handshake the agent's own max-frame-size (16384 by default) applies.
  const pre = await FakeHaproxy.connect(addr)
  pre.send(bytes`00 00 40 01`)
  t.equal(statusOf(await pre.next()), 3, 'before HELLO: 16385 > the agent max-frame-size, status 3')

  // A configured max-frame-size below HAProxy's wins, and is enforced.
  const { addr: small } = await startAgent(t, { maxFrameSize: 1024 })
  const h = await FakeHaproxy.connect(small)
  t.equal(kvValue(await h.hello(), 'max-frame-size'), 1024, 'configured 1024 < HAProxy 16380')
  h.send(bytes`00 00 04 01`)
  t.equal(statusOf(await h.next()), 3, '1025 > 1024: status 3')
  t.equal(server.stats.protocolErrors.get('ERR_SPOP_TOO_BIG'), 3, 'each counted as ERR_SPOP_TOO_BIG')
})

t.test('deadlines: stalled frame, slowloris, no HELLO, slow HELLO, ignored DISCONNECT; a busy stream is not cut', async (t) => {
  const timeouts = { helloMs: 1000, frameMs: 1000, closeGraceMs: 500 }
  const { server, addr } = await startAgent(t, { timeouts })
  const inBounds = (ms: number, deadline: number): boolean => ms >= deadline - 50 && ms <= deadline + SWEEP_MS + SLACK_MS
  const bound = (deadline: number): string => `[${deadline}, ${deadline + SWEEP_MS + SLACK_MS}] ms`

  /** Writes `data` one byte every `everyMs` until the agent answers; returns when and after how many bytes. */
  async function trickle(h: FakeHaproxy, data: Buffer, everyMs: number, since = performance.now()): Promise<{ f: Frame; ms: number; sent: number }> {
    let sent = 0
    let done = false
    const writer = (async () => {
      for (; sent < data.length && !done && h.socket.writable; sent++) {
        h.send(data.subarray(sent, sent + 1))
        await sleep(everyMs)
      }
    })()
    try {
      const f = await h.next(10_000)
      return { f, ms: performance.now() - since, sent }
    } finally {
      done = true
      await writer
    }
  }

  const stalled = async () => {
    const h = await FakeHaproxy.connect(addr)
    await h.hello()
    const at = performance.now()
    h.send(bytes`00 00 00 40  03 00 00`) // 64 bytes announced, 3 sent, nothing more
    const f = await h.next(5000)
    return { status: statusOf(f), ms: performance.now() - at }
  }

  const slowloris = async () => {
    const h = await FakeHaproxy.connect(addr)
    await h.hello()
    const notify = notifyOfSize(60)
    const r = await trickle(h, notify, 250)
    return { status: statusOf(r.f), ms: r.ms, sent: r.sent, of: notify.length }
  }

  const silent = async () => {
    const at = performance.now()
    const h = await FakeHaproxy.connect(addr)
    const f = await h.next(5000)
    return { status: statusOf(f), ms: performance.now() - at }
  }

  const slowHello = async () => {
    const at = performance.now()
    const h = await FakeHaproxy.connect(addr)
    const hello = encodeFrame(haproxyHello())
    const r = await trickle(h, hello, 250, at)
    return { status: statusOf(r.f), ms: r.ms, sent: r.sent, of: hello.length }
  }

  // Frames complete all the time, but every read ends in the middle of the
  // next one (as under sustained load): no single frame is slow, so nothing may be cut.
  const busy = async () => {
    const h = await FakeHaproxy.connect(addr)
    await h.hello()
    const frames = Array.from({ length: 20 }, (_, i) => notifyOfSize(100, i + 1))
    const half = 50
    h.send(frames[0]!.subarray(0, half))
    for (let i = 1; i < frames.length; i++) {
      await sleep(150)
      h.send(Buffer.concat([frames[i - 1]!.subarray(half), frames[i]!.subarray(0, half)]))
    }
    await sleep(150)
    h.send(frames[frames.length - 1]!.subarray(half))
    const got: Frame[] = []
    for (let i = 0; i < frames.length; i++) got.push(await h.next(2000).catch(() => ({ type: 'none' }) as unknown as Frame))
    h.destroy()
    return { acks: got.filter((f) => f.type === 'ack').length, of: frames.length, types: [...new Set(got.map((f) => f.type))] }
  }

  // The peer half-closes nothing and keeps reading nothing after our DISCONNECT.
  const ignoresDisconnect = async () => {
    const s = connect({ host: (addr as { host: string }).host, port: (addr as { port: number }).port, allowHalfOpen: true })
    s.on('error', () => {})
    s.resume() // read (and drop) what the agent sends, so its FIN shows as 'end'
    await new Promise((resolve) => s.once('connect', resolve))
    const find = (): Connection | undefined => [...server.connections].find((c) => c.socket.remotePort === s.localPort)
    await eventually(() => find() !== undefined)
    const mine = find()!
    const ended = new Promise<boolean>((resolve) => {
      s.once('end', () => resolve(true))
      setTimeout(() => resolve(false), 2000)
    })
    const at = performance.now()
    s.write(bytes`ff ff ff ff`) // status 3, then the agent ends its side; we never end ours
    await eventually(() => mine.state === 'closed', 5000, 20)
    const ms = performance.now() - at
    s.destroy()
    return { ended: await ended, closed: mine.state === 'closed', ms }
  }

  const [st, sl, si, sh, b, ig] = await Promise.all([stalled(), slowloris(), silent(), slowHello(), busy(), ignoresDisconnect()])
  t.comment(JSON.stringify({ stalled: st, slowloris: sl, noHello: si, slowHello: sh, busy: b, ignoresDisconnect: ig }, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v)))

  t.equal(st.status, 2, 'stalled frame: status 2 (a timeout occurred)')
  t.ok(inBounds(st.ms, timeouts.frameMs), `stalled frame cut after ${st.ms.toFixed(0)} ms, within ${bound(timeouts.frameMs)}`)

  t.equal(sl.status, 2, 'slowloris NOTIFY: status 2')
  t.ok(inBounds(sl.ms, timeouts.frameMs), `slowloris cut after ${sl.ms.toFixed(0)} ms, within ${bound(timeouts.frameMs)}: the deadline is absolute`)
  t.ok(sl.sent < sl.of, `the trickle did not keep it alive: ${sl.sent} of ${sl.of} bytes sent`)

  t.equal(si.status, 2, 'no HELLO: status 2')
  t.ok(inBounds(si.ms, timeouts.helloMs), `no HELLO: cut after ${si.ms.toFixed(0)} ms, within ${bound(timeouts.helloMs)}`)

  t.equal(sh.status, 2, 'HELLO one byte at a time: status 2')
  t.ok(inBounds(sh.ms, timeouts.helloMs), `slow HELLO cut after ${sh.ms.toFixed(0)} ms from accept, within ${bound(timeouts.helloMs)}`)
  t.ok(sh.sent < sh.of, `${sh.sent} of ${sh.of} HELLO bytes sent`)

  t.same(b, { acks: 20, of: 20, types: ['ack'] }, 'busy stream, reads always ending mid-frame, for 3 s: every frame ACKed, no timeout')

  t.ok(ig.ended, 'the agent ended its side after its AGENT-DISCONNECT')
  t.ok(ig.closed, 'and closed the connection although the peer never did')
  t.ok(ig.ms <= timeouts.closeGraceMs + SWEEP_MS + SLACK_MS, `a peer that keeps its end open is dropped after the close grace (${ig.ms.toFixed(0)} ms)`)

  t.equal(server.stats.timeouts, 4, 'four timeouts counted')
  t.equal(server.stats.protocolErrors.get('ERR_SPOP_TIMEOUT'), 4, 'as protocol errors ERR_SPOP_TIMEOUT')
  t.ok(await eventually(() => server.stats.connectionsOpen === 0, 3000), 'nothing left open')
})

t.test('a peer that floods NOTIFYs and never reads its ACKs: the agent stops reading, buffers nothing more', async (t) => {
  const { server, addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  // From here on the ACKs are left unread: no 'data' listener, kernel buffers fill up.
  h.socket.removeAllListeners('data')
  h.socket.pause()
  const conn = [...server.connections].find((c) => c.socket.remotePort === h.socket.localPort)!
  const ACK_BYTES = 11 // length, type, flags, sid 1, fid 1
  const notify = encodeFrame({ type: 'notify', flags: 1, streamId: 1, frameId: 1, messages: [{ name: 'm', args: [] }] }) // 14 bytes
  const batch = Buffer.concat(Array.from({ length: 4096 }, () => notify))
  let frames = 0
  let peak = 0
  const deadline = Date.now() + 3000
  // Write while our own socket takes it; stop once the agent has pushed back for a while.
  while (Date.now() < deadline) {
    if (h.socket.writableLength < 1 << 20) {
      h.send(batch)
      frames += 4096
    } else if (conn.socket.isPaused()) break
    peak = Math.max(peak, conn.socket.writableLength)
    await sleep(5)
  }
  await sleep(100)
  peak = Math.max(peak, conn.socket.writableLength)
  t.ok(conn.socket.isPaused(), 'the agent stopped reading')
  t.ok(peak < 1 << 20, `ACKs waiting in the agent stay bounded (${peak} bytes at most)`)
  t.ok(readerOf(conn).buffered < 16384, 'and no more than one frame is held')
  t.comment(`${frames} NOTIFYs written (${((frames * 14) / 1048576).toFixed(1)} MB), ${server.stats.acksSent} ACKed so far, ${peak} bytes of ACKs queued at most`)

  // The peer reads again: everything is answered, nothing was lost.
  let got = 0
  h.socket.on('data', (c: Buffer) => (got += c.length))
  h.socket.resume()
  t.ok(await eventually(() => got === frames * ACK_BYTES, 10_000), `every NOTIFY ACKed once the peer reads (${got / ACK_BYTES} of ${frames})`)
  t.equal(server.stats.protocolErrors.size, 0, 'no error')
  h.destroy()
})
