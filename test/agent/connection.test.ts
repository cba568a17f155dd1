// Socket tests of the SPOP connection with a fake HAProxy client.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { AgentServer, type AgentServerOptions, type ListenAddress } from '../../src/agent/index.js'
import {
  type Action,
  disconnectInfo,
  encodeFrame,
  type Frame,
  kvGet,
  setVar,
  tv,
  VarScope,
} from '../../src/spop/index.js'
import { bytes } from '../helpers/bytes.js'
import { FakeHaproxy, haproxyHello } from '../../harness/spop-client.js'
import { captureLogger, silentLogger } from '../helpers/logger.js'
import { eventually, within } from '../../harness/wait.js'

async function startAgent(
  t: Test,
  opts: Partial<AgentServerOptions> = {},
): Promise<{ server: AgentServer; addr: ListenAddress }> {
  const server = new AgentServer({
    handler: () => [],
    logger: silentLogger(),
    listen: { host: '127.0.0.1', port: 0 },
    ...opts,
  })
  const addr = await server.listen()
  t.teardown(() => server.destroy())
  return { server, addr }
}


const kvString = (f: Frame, key: string): unknown => ('kv' in f ? kvGet(f.kv, key)?.value : undefined)

async function expectDisconnect(t: Test, h: FakeHaproxy, status: number, what: string): Promise<void> {
  const f = await h.next()
  t.equal(f.type, 'agent-disconnect', `${what}: AGENT-DISCONNECT`)
  if (f.type === 'agent-disconnect') t.equal(disconnectInfo(f.kv).status, status, `${what}: status ${status}`)
  await h.waitClosed()
  t.pass(`${what}: connection closed`)
}

const msg = (name: string, ...args: Array<[string, ReturnType<typeof tv.string>]>) => ({
  name,
  args: args.map(([n, v]) => ({ name: n, ...v })),
})

t.test('handshake variants', async (t) => {
  const { addr } = await startAgent(t, { capabilities: ['pipelining'] })
  const cases: Array<[string, string, string]> = [
    ['2.6 default offer', 'pipelining,async', 'pipelining'],
    ['3.x offer', 'pipelining', 'pipelining'],
    ['no capability (no option pipelining)', '', ''],
  ]
  for (const [name, offer, expected] of cases) {
    const h = await FakeHaproxy.connect(addr)
    const f = await h.hello({ capabilities: offer })
    t.equal(f.type, 'agent-hello', `${name}: AGENT-HELLO`)
    t.equal(kvString(f, 'version'), '2.0', `${name}: version`)
    t.equal(kvString(f, 'max-frame-size'), 16380, `${name}: HAProxy's max-frame-size echoed`)
    t.equal(kvString(f, 'capabilities'), expected, `${name}: capabilities`)
    t.same([f.flags, f.streamId, f.frameId], [1, 0, 0], `${name}: FIN, ids 0`)
    h.destroy()
  }
})

t.test('capabilities configured: async when both sides have it, fragmentation whenever configured', async (t) => {
  const { addr } = await startAgent(t, { capabilities: ['pipelining', 'async', 'fragmentation'], maxFrameSize: 1024 })
  const h = await FakeHaproxy.connect(addr)
  // HAProxy 2.6's offer: it never lists fragmentation (it cannot receive fragments).
  const f = await h.hello({ capabilities: 'pipelining,async' })
  t.equal(kvString(f, 'capabilities'), 'pipelining,async,fragmentation', 'fragmentation is the receiver\'s to announce (SPOE.txt 3.2.1)')
  t.equal(kvString(f, 'max-frame-size'), 1024, 'configured lower wins')
  h.destroy()
})

t.test('health check: AGENT-HELLO, then the agent closes', async (t) => {
  const { server, addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  const f = await h.hello({ healthcheck: true, capabilities: '' })
  t.equal(f.type, 'agent-hello')
  await h.waitClosed()
  t.equal(server.stats.healthchecks, 1)
})

t.test('NOTIFY -> handler -> ACK with the actions, ids echoed', async (t) => {
  const seen: unknown[] = []
  const { server, addr } = await startAgent(t, {
    handler: (messages, ctx) => {
      seen.push({ messages, ctx })
      return [setVar(VarScope.TXN, 'score', tv.int32(75)), { type: 2, scope: VarScope.SESS, name: 'gone' }]
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello({ engineId: 'eng-1' })
  h.notify(0, 1, [msg('check', ['ip', tv.string('x')])])
  const ack = await h.next()
  t.same(ack, {
    type: 'ack',
    flags: 1,
    streamId: 0,
    frameId: 1,
    actions: [
      { type: 1, scope: 2, name: 'score', value: tv.int32(75) },
      { type: 2, scope: 1, name: 'gone' },
    ],
  })
  t.same(seen, [
    {
      messages: [{ name: 'check', args: [{ name: 'ip', ...tv.string('x') }] }],
      // size: the frame's bytes after its length; frame: those bytes, its LIST-OF-MESSAGES from messagesAt
      ctx: {
        engineId: 'eng-1',
        streamId: 0,
        frameId: 1,
        size: 20,
        frame: Buffer.from('0300000001000105636865636b01026970080178', 'hex'),
        messagesAt: 7,
      },
    },
  ])
  t.equal(server.stats.notifyReceived, 1)
  t.equal(server.stats.acksSent, 1)
  h.destroy()
})

t.test('pipelined NOTIFY frames, answered out of order as handlers complete', async (t) => {
  const { addr } = await startAgent(t, {
    handler: async (_m, ctx) => {
      // Later frames finish first.
      await new Promise((r) => setTimeout(r, 10 * (6 - Number(ctx.frameId))))
      return [setVar(VarScope.TXN, 'fid', tv.int64(Number(ctx.frameId)))]
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello({ capabilities: 'pipelining' })
  h.send(Buffer.concat([1, 2, 3, 4, 5].map((fid) =>
    encodeFrame({ type: 'notify', flags: 1, streamId: 7, frameId: fid, messages: [msg('m')] }),
  )))
  const order: number[] = []
  for (let i = 0; i < 5; i++) {
    const f = await h.next()
    if (f.type !== 'ack') throw new Error(`expected ACK, got ${f.type}`)
    t.equal(f.streamId, 7)
    t.same(f.actions, [setVar(VarScope.TXN, 'fid', tv.int64(Number(f.frameId)))], 'actions belong to their frame')
    order.push(Number(f.frameId))
  }
  t.same(order, [5, 4, 3, 2, 1], 'ACKs in completion order')
  h.destroy()
})

t.test('many pipelined frames in one TCP write all get their ACK', async (t) => {
  const { addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  const n = 200
  h.send(Buffer.concat(Array.from({ length: n }, (_, i) =>
    encodeFrame({ type: 'notify', flags: 1, streamId: i, frameId: 1, messages: [msg('m', ['a', tv.string('v')])] }),
  )))
  const ids = new Set<number>()
  for (let i = 0; i < n; i++) ids.add(Number((await h.next()).streamId))
  t.equal(ids.size, n)
  h.destroy()
})

t.test('fragmented NOTIFY (HAProxy 2.6 with fragmentation): reassembled, ACKed once', async (t) => {
  const got: unknown[] = []
  const bytes: Buffer[] = []
  const { server, addr } = await startAgent(t, {
    capabilities: ['pipelining', 'fragmentation'],
    handler: (m, ctx) => {
      got.push(m)
      bytes.push(Buffer.from(ctx.frame.subarray(ctx.messagesAt)))
      return []
    },
  })
  const h = await FakeHaproxy.connect(addr)
  // HAProxy 2.6 never offers fragmentation itself; the agent's announcement is what enables it.
  const hello = await h.hello({ capabilities: 'pipelining,async' })
  t.equal(kvString(hello, 'capabilities'), 'pipelining,fragmentation')
  const whole = encodeFrame({
    type: 'notify',
    flags: 1,
    streamId: 3,
    frameId: 1,
    messages: [msg('big', ['a', tv.string('x'.repeat(100))], ['b', tv.string('y'.repeat(50))])],
  })
  const payload = whole.subarray(4 + 7) // after length, type, flags, sid, fid
  // Split inside a string value, as HAProxy does.
  const parts = [payload.subarray(0, 40), payload.subarray(40, 120), payload.subarray(120)]
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 3, frameId: 1, payload: parts[0]! })
  h.send({ type: 'fragment', wireType: 0, flags: 0, streamId: 3, frameId: 1, payload: parts[1]! })
  h.send({ type: 'fragment', wireType: 0, flags: 1, streamId: 3, frameId: 1, payload: parts[2]! })
  const ack = await h.next()
  t.same([ack.type, ack.streamId, ack.frameId], ['ack', 3, 1])
  t.same(got, [[msg('big', ['a', tv.string('x'.repeat(100))], ['b', tv.string('y'.repeat(50))])]])
  t.same(bytes, [payload], "the handler sees the reassembled LIST-OF-MESSAGES, as HAProxy's fragments carried it")

  // Aborted: HAProxy sends UNSET with FIN|ABORT and expects no ACK.
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 4, frameId: 1, payload: parts[0]! })
  h.send({ type: 'fragment', wireType: 0, flags: 3, streamId: 4, frameId: 1, payload: Buffer.alloc(0) })
  h.notify(5, 1, [msg('after')])
  const next = await h.next()
  t.same([next.type, next.streamId], ['ack', 5], 'no ACK for the aborted frame; the next one is served')
  t.equal(server.stats.fragmentsAborted, 1)

  // Interlaced: a new NOTIFY while one is being reassembled.
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 6, frameId: 1, payload: parts[0]! })
  h.notify(7, 1, [msg('m')])
  await expectDisconnect(t, h, 11, 'interlaced frames')
})

t.test('fragmented NOTIFY without the fragmentation capability: status 10', async (t) => {
  const { addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 1, frameId: 1, payload: Buffer.from([1]) })
  await expectDisconnect(t, h, 10, 'FIN clear')
})

t.test('UNSET continuation of nothing: status 12', async (t) => {
  const { addr } = await startAgent(t, { capabilities: ['fragmentation'] })
  const a = await FakeHaproxy.connect(addr)
  await a.hello({ capabilities: '' })
  a.send({ type: 'fragment', wireType: 0, flags: 1, streamId: 1, frameId: 1, payload: Buffer.from([1]) })
  await expectDisconnect(t, a, 12, 'orphan continuation')
})

t.test('reassembly over the bound: that NOTIFY alone is aborted (ACK with ABORT), the connection goes on', async (t) => {
  const got: string[] = []
  const { server, addr } = await startAgent(t, {
    capabilities: ['pipelining', 'fragmentation'],
    maxReassembledSize: 100,
    handler: (m) => {
      got.push(...m.map((x) => x.name))
      return []
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello({ capabilities: 'pipelining,async' })
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 1, frameId: 1, payload: Buffer.alloc(60) })
  h.send({ type: 'fragment', wireType: 0, flags: 0, streamId: 1, frameId: 1, payload: Buffer.alloc(60) })
  const abort = await h.next()
  t.same([abort.type, abort.flags, abort.streamId, abort.frameId], ['ack', 3, 1, 1], 'ACK with FIN|ABORT for that NOTIFY')
  t.same(abort.type === 'ack' && abort.actions, [], 'and no actions')
  // Fragments HAProxy sent before it read the abort are dropped, its last one included: no second ACK.
  h.send({ type: 'fragment', wireType: 0, flags: 0, streamId: 1, frameId: 1, payload: Buffer.alloc(60) })
  h.send({ type: 'fragment', wireType: 0, flags: 1, streamId: 1, frameId: 1, payload: Buffer.alloc(10) })
  h.notify(2, 1, [msg('after')])
  const next = await h.next()
  t.same([next.type, next.flags, next.streamId], ['ack', 1, 2], 'the next NOTIFY is answered as usual')
  // HAProxy may also move on without sending the rest: a new NOTIFY ends the discarding.
  h.send({ type: 'fragment', wireType: 3, flags: 0, streamId: 3, frameId: 1, payload: Buffer.alloc(120) })
  t.same((await h.next()).flags, 3, 'aborted at once: its first fragment is over the bound')
  h.notify(4, 1, [msg('later')])
  t.same((await h.next()).streamId, 4)
  t.same(got, ['after', 'later'], 'the aborted payloads never reach the handler')
  t.equal(server.stats.fragmentsRefused, 2)
  t.equal(server.stats.protocolErrors.size, 0, 'no protocol error')
  h.destroy()
})

t.test('AGENT-DISCONNECT message: at most 255 bytes of UTF-8, never cut inside a character', async (t) => {
  const { addr } = await startAgent(t)
  for (const unit of ['\u00e9', '\u20ac', '\u{1F600}', 'a\u00e9']) {
    const h = await FakeHaproxy.connect(addr)
    // The message quotes what the peer sent: multi-byte text from the peer.
    h.send(haproxyHello({ versions: unit.repeat(200) }))
    const f = await h.next()
    t.equal(f.type, 'agent-disconnect')
    if (f.type !== 'agent-disconnect') continue
    const { status, message } = disconnectInfo(f.kv)
    t.equal(status, 8, 'unsupported version')
    const bytes = Buffer.byteLength(message)
    t.ok(bytes <= 255 && bytes > 240, `${JSON.stringify(unit)}: ${bytes} bytes`)
    t.notOk(message.includes('\ufffd'), 'no broken character at the cut')
    t.ok(message.startsWith('unsupported version: "'))
    h.destroy()
  }
})

t.test('an ACK never exceeds max-frame-size: its last actions are left out, counted, logged once', async (t) => {
  const big = (name: string, n: number): Action => setVar(VarScope.TXN, name, tv.string('v'.repeat(n)))
  const { logger, lines } = captureLogger()
  const { server, addr } = await startAgent(t, {
    logger,
    maxFrameSize: 300,
    handler: (m) =>
      m[0]!.name === 'huge'
        ? [big('only', 400)]
        : [big('traceparent', 55), big('tracestate', 120), big('baggage', 200)],
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.notify(1, 1, [msg('inject')])
  const a = await h.next()
  t.equal(a.type, 'ack')
  if (a.type === 'ack') t.same(a.actions.map((x) => x.name), ['traceparent', 'tracestate'], 'baggage (last) left out')
  h.notify(2, 1, [msg('inject')])
  h.notify(3, 1, [msg('huge')])
  const b = await h.next()
  const c = await h.next()
  t.same([b.type, b.streamId], ['ack', 2])
  t.same(c.type === 'ack' && [c.streamId, c.actions.length], [3, 0], 'nothing fits: an empty ACK')
  t.equal(server.stats.acksTrimmed, 3)
  t.equal(server.stats.ackActionsDropped, 3)
  t.equal(server.stats.protocolErrors.size, 0)
  const warned = lines.filter((l) => /exceed max-frame-size/.test(String(l.msg)))
  t.equal(warned.length, 1, 'one log line, rate-limited')
  t.same(warned[0]?.dropNames, ['baggage'])
  t.equal(warned[0]?.maxFrameSize, 300)
  h.destroy()
})

t.test('HAPROXY-DISCONNECT -> AGENT-DISCONNECT (0) and close', async (t) => {
  const { server, addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.disconnect(2, 'a timeout occurred')
  await expectDisconnect(t, h, 0, 'reply to DISCONNECT')
  t.equal(server.stats.disconnectsReceived.get(2), 1)
})

t.test('protocol errors: each answered with its status, then closed', async (t) => {
  const { server, addr } = await startAgent(t)
  const cases: Array<[string, number, (h: FakeHaproxy) => Promise<void> | void]> = [
    ['NOTIFY before HELLO', 4, (h) => h.notify(1, 1, [msg('m')])],
    ['unknown frame before HELLO', 4, (h) => h.send(bytes`00 00 00 07  2a  00 00 00 01  00 00`)],
    ['HELLO without FIN', 4, (h) => h.send({ ...(encodeHelloFrame()), flags: 0 })],
    ['HELLO with non-zero ids', 4, (h) => h.send({ ...(encodeHelloFrame()), streamId: 1 })],
    ['unsupported version', 8, (h) => h.send(haproxyHello({ versions: '1.0' }))],
    ['missing version', 5, (h) => h.send({ ...encodeHelloFrame(), kv: encodeHelloFrame().kv.slice(1) })],
    ['missing max-frame-size', 6, (h) => h.send({ ...encodeHelloFrame(), kv: [encodeHelloFrame().kv[0]!] })],
    ['max-frame-size below 256', 9, (h) => h.send(haproxyHello({ maxFrameSize: 100 }))],
    ['second HELLO', 4, async (h) => {
      await h.hello()
      h.send(encodeHelloFrame())
    }],
    ['ACK sent by HAProxy', 4, async (h) => {
      await h.hello()
      h.send({ type: 'ack', flags: 1, streamId: 1, frameId: 1, actions: [] })
    }],
    ['AGENT-HELLO sent by HAProxy', 4, async (h) => {
      await h.hello()
      h.send({ ...encodeHelloFrame(), type: 'agent-hello' })
    }],
    ['frame longer than max-frame-size', 3, async (h) => {
      await h.hello({ maxFrameSize: 1024 })
      h.notify(1, 1, [msg('m', ['a', tv.string('x'.repeat(2000))])])
    }],
    ['4 GiB length prefix', 3, async (h) => {
      await h.hello()
      h.send(bytes`ff ff ff ff 03`)
    }],
    ['length shorter than a header', 4, async (h) => {
      await h.hello()
      h.send(bytes`00 00 00 00`)
    }],
    ['truncated NOTIFY payload', 4, async (h) => {
      await h.hello()
      h.send(bytes`00 00 00 0b  03  00 00 00 01  01 01  09 "abc"`)
    }],
    ['reserved data type in an argument', 4, async (h) => {
      await h.hello()
      h.send(bytes`00 00 00 0d  03  00 00 00 01  01 01  01 "m" 01 01 "a" 0c`)
    }],
    ['an HTTP request on the SPOP port ("GET " reads as a 1.2 GB length)', 3, (h) => h.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))],
  ]
  for (const [name, status, act] of cases) {
    const h = await FakeHaproxy.connect(addr)
    await act(h)
    await expectDisconnect(t, h, status, name)
  }
  t.ok(server.stats.protocolErrors.size > 0)
  t.ok(await eventually(() => server.stats.connectionsOpen === 0), 'nothing left open')
})

function encodeHelloFrame(): Extract<Frame, { type: 'haproxy-hello' | 'agent-hello' }> {
  return {
    type: 'haproxy-hello',
    flags: 1,
    streamId: 0,
    frameId: 0,
    kv: [
      { name: 'supported-versions', ...tv.string('2.0') },
      { name: 'max-frame-size', ...tv.uint32(16380) },
      { name: 'capabilities', ...tv.string('pipelining') },
    ],
  }
}

t.test('a bad connection does not disturb the others', async (t) => {
  const { addr } = await startAgent(t, { handler: () => [setVar(VarScope.TXN, 'ok', tv.bool(true))] })
  const good = await FakeHaproxy.connect(addr)
  await good.hello()
  const bad = await FakeHaproxy.connect(addr)
  await bad.hello()
  bad.send(bytes`ff ff ff ff`)
  await bad.waitClosed()
  good.notify(1, 1, [msg('m')])
  const ack = await good.next()
  t.equal(ack.type, 'ack')
  const fresh = await FakeHaproxy.connect(addr)
  t.equal((await fresh.hello()).type, 'agent-hello', 'new connections still served')
  good.destroy()
  fresh.destroy()
})

t.test('a close or reset without DISCONNECT is a normal close', async (t) => {
  const { server, addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.notify(1, 1, [msg('m')])
  await h.next()
  h.socket.resetAndDestroy()
  const h2 = await FakeHaproxy.connect(addr)
  await h2.hello()
  h2.socket.end()
  await h2.waitClosed()
  t.ok(await eventually(() => server.stats.connectionsOpen === 0), 'all closed')
  t.equal(server.stats.closedWithoutDisconnect, 2)
  t.equal(server.stats.disconnectsSent.size, 0, 'no AGENT-DISCONNECT sent, no error counted')
  t.equal(server.stats.protocolErrors.size, 0)
})

t.test('a throwing or rejecting handler costs an empty ACK, not the connection', async (t) => {
  const cap = captureLogger()
  let n = 0
  const { server, addr } = await startAgent(t, {
    logger: cap.logger,
    handler: (): Action[] | Promise<Action[]> => {
      n++
      if (n === 1) throw new Error('boom')
      if (n === 2) return Promise.reject(new Error('async boom'))
      if (n === 3) return [{ type: 1, scope: 9 as 0, name: 'x', value: tv.null() }]
      return []
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  for (let fid = 1; fid <= 4; fid++) {
    h.notify(1, fid, [msg('m')])
    const f = await h.next()
    t.same([f.type, f.frameId, 'actions' in f ? f.actions : null], ['ack', fid, []], `frame ${fid}`)
  }
  t.equal(server.stats.handlerErrors, 3)
  t.ok(cap.lines.some((l) => l.msg === 'NOTIFY handler failed; answered with an empty ACK'))
  h.destroy()
})

t.test('unknown frame types after the handshake are skipped and counted', async (t) => {
  const { server, addr } = await startAgent(t)
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.send(bytes`00 00 00 09  2a  00 00 00 01  01 01  de ad`)
  h.notify(1, 1, [msg('m')])
  t.equal((await h.next()).type, 'ack')
  t.equal(server.stats.unknownFrames, 1)
  h.destroy()
})

t.test('bad-input log lines are rate limited', async (t) => {
  const cap = captureLogger('warn')
  const { addr } = await startAgent(t, { logger: cap.logger, logIntervalMs: 60_000 })
  for (let i = 0; i < 20; i++) {
    const h = await FakeHaproxy.connect(addr)
    h.send(bytes`ff ff ff ff`)
    await h.waitClosed()
  }
  const lines = cap.lines.filter((l) => l.code === 'ERR_SPOP_TOO_BIG')
  t.equal(lines.length, 1, 'one line for 20 identical errors')
})

t.test('timeouts: no HELLO, and a frame that never completes', async (t) => {
  const { server, addr } = await startAgent(t, { timeouts: { helloMs: 300, frameMs: 300 } })
  const a = await FakeHaproxy.connect(addr)
  await expectDisconnect(t, a, 2, 'no HELLO')
  const b = await FakeHaproxy.connect(addr)
  await b.hello()
  b.send(bytes`00 00 00 40  03 00 00`) // 64 bytes announced, 3 sent
  await expectDisconnect(t, b, 2, 'stalled mid-frame')
  t.equal(server.stats.timeouts, 2)
})

t.test('graceful close: in-flight frames are ACKed, then AGENT-DISCONNECT 0', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  let arrived!: () => void
  const inHandler = new Promise<void>((r) => (arrived = r))
  const { server, addr } = await startAgent(t, {
    handler: async () => {
      arrived()
      await gate
      return [setVar(VarScope.TXN, 'late', tv.bool(true))]
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.notify(9, 1, [msg('m')])
  await within(inHandler, 2000, 'the NOTIFY reaching the handler')
  const closing = server.close(2000)
  release()
  const ack = await h.next()
  t.same([ack.type, ack.streamId], ['ack', 9], 'the in-flight frame is answered first')
  await expectDisconnect(t, h, 0, 'shutdown')
  await closing
  t.notOk(server.listening, 'no longer accepting')
})

t.test('graceful close gives up at its deadline', async (t) => {
  let arrived!: () => void
  const inHandler = new Promise<void>((r) => (arrived = r))
  const { server, addr } = await startAgent(t, {
    handler: () => {
      arrived()
      return new Promise<Action[]>(() => {})
    },
  })
  const h = await FakeHaproxy.connect(addr)
  await h.hello()
  h.notify(1, 1, [msg('m')])
  await within(inHandler, 2000, 'the NOTIFY reaching the handler')
  const started = Date.now()
  await server.close(300)
  t.ok(Date.now() - started < 2000, 'bounded')
  await h.waitClosed()
})

t.test('unix socket listener; a live socket is not stolen, a stale one is replaced', async (t) => {
  // Unix socket paths are limited to 107 bytes: tap's fixture directories are too deep.
  const dir = mkdtempSync(join(tmpdir(), 'spoa-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'agent.sock')
  const first = new AgentServer({ handler: () => [], logger: silentLogger(), listen: { path } })
  await first.listen()
  const h = await FakeHaproxy.connect({ path })
  t.equal((await h.hello()).type, 'agent-hello')
  h.destroy()
  const second = new AgentServer({ handler: () => [], logger: silentLogger(), listen: { path } })
  await t.rejects(second.listen(), { code: 'EADDRINUSE' }, 'a live socket is not stolen')
  await first.close(500)

  // A crashed agent leaves its socket file behind: make one with a process killed by SIGKILL.
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
  ])
  await new Promise((resolve) => child.stdout.once('data', resolve))
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  t.ok(existsSync(path), 'stale socket file left behind')
  const third = new AgentServer({ handler: () => [], logger: silentLogger(), listen: { path } })
  await third.listen()
  const h2 = await FakeHaproxy.connect({ path })
  t.equal((await h2.hello()).type, 'agent-hello', 'the stale file was replaced')
  h2.destroy()
  await third.close(500)
})

t.test('unix socket: mode and owner applied once listening', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'agent.sock')
  const server = new AgentServer({
    handler: () => [],
    logger: silentLogger(),
    listen: { path },
    socketMode: 0o600,
    socketOwner: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
  })
  await server.listen()
  t.teardown(() => server.destroy())
  const st = statSync(path)
  t.equal(st.mode & 0o777, 0o600)
  if (process.getuid?.() === 0) t.same([st.uid, st.gid], [65534, 65534])
})

t.test('max connections: extra connections are refused', async (t) => {
  const { server, addr } = await startAgent(t, { maxConnections: 2 })
  const a = await FakeHaproxy.connect(addr)
  const b = await FakeHaproxy.connect(addr)
  await a.hello()
  await b.hello()
  const c = await FakeHaproxy.connect(addr)
  await c.waitClosed()
  t.equal(server.stats.connectionsRejected, 1)
  a.destroy()
  b.destroy()
})
