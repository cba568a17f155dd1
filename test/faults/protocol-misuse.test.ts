// Frames in the wrong place, wrong direction or with out-of-range ids, on a
// real socket, with the exact reply asserted byte for byte where it matters.
// Extends test/agent/connection.test.ts (which has NOTIFY before HELLO, a
// second HELLO, ACK and AGENT-HELLO after HELLO, unknown frames skipped) with
// what it lacks: agent-side frame types before and after the handshake,
// DISCONNECT before HELLO and with odd statuses, flags on HELLO, frames
// pipelined behind a HELLO or behind an error, and 64-bit id limits.

import t, { type Test } from 'tap'
import { AgentServer, type ListenAddress } from '../../src/agent/index.js'
import { disconnectFrame, disconnectInfo, encodeFrame, type Frame, type HelloFrame, type NamedValue, tv } from '../../src/spop/index.js'
import { bytes } from '../helpers/bytes.js'
import { haproxyHello } from '../../harness/spop-client.js'
import { captureLogger } from '../helpers/logger.js'
import { type ProbeResult, probe } from '../../harness/spop-probe.js'
import { eventually } from '../../harness/wait.js'

const HELLO = encodeFrame(haproxyHello({ capabilities: 'pipelining' }))
const notify = (sid: number | bigint = 1, fid: number | bigint = 1): Buffer =>
  encodeFrame({ type: 'notify', flags: 1, streamId: sid, frameId: fid, messages: [{ name: 'm', args: [] }] })
const haproxyDisconnect = (kv: NamedValue[]): Buffer => encodeFrame({ type: 'haproxy-disconnect', flags: 1, streamId: 0, frameId: 0, kv })
const status = (v: ReturnType<typeof tv.string>): NamedValue => ({ name: 'status-code', ...v })

// 2^64 - 1 as a varint (docs/PROTOCOL.md, Varint), and two encodings that do not fit in 64 bits.
const U64_MAX = bytes`ff f0 fe fe fe fe fe fe fe 0e`
const TEN_BYTES_OVER = bytes`ff f0 fe fe fe fe fe fe fe 0f` // 2^64 - 1 + 2^60
const ELEVEN_BYTES = bytes`ff ff ff ff ff ff ff ff ff ff 00`

/** A frame from its body bytes, length prefix added. */
function rawFrame(...body: Buffer[]): Buffer {
  const b = Buffer.concat(body)
  const len = Buffer.alloc(4)
  len.writeUInt32BE(b.length)
  return Buffer.concat([len, b])
}

/** A NOTIFY (FIN) with raw id bytes: no encoder would write ids that do not fit. */
const rawNotify = (sid: Buffer, fid: Buffer): Buffer => rawFrame(bytes`03 00 00 00 01`, sid, fid, bytes`01 "m" 00`)

type Expect = 'hello' | ['ack', number | bigint, number | bigint] | ['disconnect', number]

const describe = (f: Frame): string =>
  f.type === 'agent-disconnect' ? `disconnect ${disconnectInfo(f.kv).status}` : f.type === 'ack' ? `ack ${f.streamId}/${f.frameId}` : f.type

const want = (e: Expect): string => (e === 'hello' ? 'agent-hello' : e[0] === 'ack' ? `ack ${e[1]}/${e[2]}` : `disconnect ${e[1]}`)

let server: AgentServer
let addr: ListenAddress
const cap = captureLogger('warn')

t.before(async () => {
  server = new AgentServer({
    handler: () => [],
    logger: cap.logger,
    listen: { host: '127.0.0.1', port: 0 },
    logIntervalMs: 60_000,
  })
  addr = await server.listen()
})
t.teardown(() => server.destroy())

/**
 * Sends `input` and checks the agent's frames in order. When the last
 * expected frame is a DISCONNECT (or `agentCloses`), the agent must close by
 * itself; otherwise we half-close and it must close in turn.
 */
async function exchange(t: Test, name: string, input: Buffer[], expected: Expect[], agentCloses?: boolean): Promise<ProbeResult> {
  const last = expected[expected.length - 1]
  const closes = agentCloses ?? (Array.isArray(last) && last[0] === 'disconnect')
  const r = await probe(addr, input, { after: closes ? 'none' : 'end' })
  t.equal(r.decodeError, null, `${name}: the reply decodes`)
  t.same(r.frames.map(describe), expected.map(want), `${name}: ${expected.map(want).join(', ') || 'nothing'}`)
  t.ok(r.closed, closes ? `${name}: the agent closed the connection` : `${name}: closed after our half-close`)
  return r
}

t.test('before HELLO: agent-side frames, continuations, unknown types, DISCONNECT', async (t) => {
  const before = server.stats.disconnectsReceived.get(0) ?? 0
  await exchange(t, 'unknown type 42 with stream-id 0', [bytes`00 00 00 07  2a  00 00 00 01  00 00`], [['disconnect', 4]])
  await exchange(t, 'unknown type 42 with ids 5/9, FIN clear', [bytes`00 00 00 09  2a  00 00 00 00  05 09 de ad`], [['disconnect', 4]])
  await exchange(t, 'AGENT-HELLO from HAProxy', [encodeFrame({ ...(haproxyHello() as HelloFrame), type: 'agent-hello' })], [['disconnect', 4]])
  await exchange(t, 'AGENT-DISCONNECT from HAProxy', [encodeFrame(disconnectFrame('agent-disconnect', 0, 'normal'))], [['disconnect', 4]])
  await exchange(t, 'ACK from HAProxy', [encodeFrame({ type: 'ack', flags: 1, streamId: 1, frameId: 1, actions: [] })], [['disconnect', 4]])
  await exchange(t, 'UNSET continuation', [bytes`00 00 00 08  00  00 00 00 01  01 01 00`], [['disconnect', 4]])
  await exchange(t, 'NOTIFY without FIN (reg-test: 4 while waiting for the HELLO)', [bytes`00 00 00 08  03  00 00 00 00  01 01 00`], [['disconnect', 4]])
  await exchange(t, 'NOTIFY then HELLO in one write: no AGENT-HELLO', [Buffer.concat([notify(), HELLO])], [['disconnect', 4]])
  await exchange(t, 'HAPROXY-DISCONNECT before HELLO', [encodeFrame(disconnectFrame('haproxy-disconnect', 0, 'normal'))], [['disconnect', 0]])
  await exchange(t, 'HELLO with an 11-byte stream-id', [bytes`00 00 00 10  01  00 00 00 01`, ELEVEN_BYTES, bytes`00`], [['disconnect', 4]])
  t.equal(server.stats.disconnectsReceived.get(0), before + 1, 'the early DISCONNECT is counted')
})

t.test('HELLO flags and pipelining behind the HELLO', async (t) => {
  // HAProxy checks only FIN on a HELLO (2.6 and 3.x alike); reserved bits and ABORT are tolerated the same way here.
  await exchange(t, 'HELLO with FIN|ABORT', [encodeFrame({ ...haproxyHello(), flags: 3 }), notify(3, 1)], ['hello', ['ack', 3, 1]])
  await exchange(t, 'HELLO with every flag bit set', [encodeFrame({ ...haproxyHello(), flags: 0xffffffff }), notify(4, 1)], ['hello', ['ack', 4, 1]])
  await exchange(t, 'HELLO and two NOTIFYs in one write', [Buffer.concat([HELLO, notify(1, 1), notify(2, 1)])], ['hello', ['ack', 1, 1], ['ack', 2, 1]])
  await exchange(t, 'empty NOTIFY (3.1-3.2 may send one): still ACKed', [HELLO, bytes`00 00 00 07  03  00 00 00 01  05 01`], ['hello', ['ack', 5, 1]])
  await exchange(
    t,
    'health-check HELLO with a NOTIFY behind it: AGENT-HELLO, close, no ACK',
    [Buffer.concat([encodeFrame(haproxyHello({ healthcheck: true, capabilities: '' })), notify()])],
    ['hello'],
    true,
  )
})

t.test('after HELLO: agent-side frames, frames behind an error or a DISCONNECT', async (t) => {
  await exchange(t, 'AGENT-DISCONNECT from HAProxy', [HELLO, encodeFrame(disconnectFrame('agent-disconnect', 0, 'normal'))], ['hello', ['disconnect', 4]])
  await exchange(t, 'NOTIFY pipelined behind an invalid frame: never ACKed', [HELLO, Buffer.concat([bytes`00 00 00 00`, notify()])], ['hello', ['disconnect', 4]])
  await exchange(
    t,
    'NOTIFY pipelined behind HAPROXY-DISCONNECT: never ACKed',
    [HELLO, Buffer.concat([encodeFrame(disconnectFrame('haproxy-disconnect', 0, 'normal')), notify()])],
    ['hello', ['disconnect', 0]],
  )
})

t.test('unknown frame types with stream-id 0 after HELLO: skipped, counted, one log line', async (t) => {
  const before = server.stats.unknownFrames
  const unknown = Array.from({ length: 100 }, (_, i) => encodeFrame({ type: 'unknown', wireType: 4 + (i % 96), flags: 1, streamId: 0, frameId: 0, payload: Buffer.alloc(i) }))
  await exchange(t, '100 unknown frames then a NOTIFY', [HELLO, Buffer.concat([...unknown, notify(8, 2)])], ['hello', ['ack', 8, 2]])
  t.equal(server.stats.unknownFrames - before, 100, 'each one counted')
  t.equal(cap.lines.filter((l) => l.msg === 'skipped a frame of unknown type').length, 1, 'one rate-limited log line for 100 frames')
})

t.test('HAPROXY-DISCONNECT with odd statuses: answered with 0, counted under bounded keys', async (t) => {
  const d = server.stats.disconnectsReceived
  const at = (k: number): number => d.get(k) ?? 0
  const [unknown0, other0] = [at(99), at(-1)]
  const cases: Array<[string, NamedValue[]]> = [
    ['a STRING status', [status(tv.string('0')), { name: 'message', ...tv.string('x') }]],
    ['no status-code at all', []],
    ['a BOOL status', [status(tv.bool(true))]],
    ['status 2^64 - 1 (UINT64)', [status(tv.uint64(2n ** 64n - 1n))]],
    ['a 10 KB message', [status(tv.uint32(1)), { name: 'message', ...tv.string('m'.repeat(10_000)) }]],
  ]
  for (const [name, kv] of cases) await exchange(t, name, [HELLO, haproxyDisconnect(kv)], ['hello', ['disconnect', 0]])
  t.equal(at(99) - unknown0, 4, 'a status that is missing or not an integer (or beyond 2^53) reads as 99 (unknown)')
  t.equal(at(1), 1, 'status 1 counted as itself')

  // HAProxy may send codes of its own: whatever they are, they share one key ("other" on /metrics).
  const sizeBefore = d.size
  for (let i = 0; i < 40; i++) {
    await exchange(t, `status ${1000 + i * 7919}`, [HELLO, haproxyDisconnect([status(tv.uint32(1000 + i * 7919))])], ['hello', ['disconnect', 0]])
  }
  await exchange(t, 'negative INT32 status', [HELLO, haproxyDisconnect([status(tv.int32(-5))])], ['hello', ['disconnect', 0]])
  t.equal(at(-1) - other0, 41, 'codes SPOE.txt does not define: one key for all')
  t.ok(d.size <= sizeBefore + 1, `the map did not grow with them (${d.size} keys)`)
  t.ok(cap.lines.filter((l) => l.msg === 'HAProxy disconnected with an error').length <= 3, 'their log lines share one rate limit')
})

t.test('ids beyond 64 bits: status 4; the largest ids are echoed exactly', async (t) => {
  const one = bytes`01`
  await exchange(t, 'stream-id of 11 bytes', [HELLO, rawNotify(ELEVEN_BYTES, one)], ['hello', ['disconnect', 4]])
  await exchange(t, 'frame-id of 11 bytes', [HELLO, rawNotify(one, ELEVEN_BYTES)], ['hello', ['disconnect', 4]])
  await exchange(t, 'stream-id of 10 bytes >= 2^64', [HELLO, rawNotify(TEN_BYTES_OVER, one)], ['hello', ['disconnect', 4]])
  await exchange(t, 'frame-id of 10 bytes >= 2^64', [HELLO, rawNotify(one, TEN_BYTES_OVER)], ['hello', ['disconnect', 4]])
  await exchange(t, 'stream-id 0xff..ff (10 bytes, far beyond 2^64)', [HELLO, rawNotify(bytes`ff ff ff ff ff ff ff ff ff 7f`, one)], ['hello', ['disconnect', 4]])
  await exchange(t, 'frame-id varint cut by the end of the frame', [HELLO, rawFrame(bytes`03 00 00 00 01  01  ff ff`)], ['hello', ['disconnect', 4]])

  const max = 2n ** 64n - 1n
  const r = await exchange(t, 'stream-id and frame-id 2^64 - 1', [HELLO, rawNotify(U64_MAX, U64_MAX)], ['hello', ['ack', max, max]])
  const ack = r.raw.subarray(r.raw.length - 29)
  t.same(ack, Buffer.concat([bytes`00 00 00 19  67  00 00 00 01`, U64_MAX, U64_MAX]), 'the ACK carries the very same 10-byte ids')
  for (const [sid, fid] of [
    [2n ** 53n - 1n, 2n ** 53n],
    [2n ** 64n - 2n, 0n],
    [0n, 2n ** 63n],
  ] as const) {
    const s = sid <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sid) : sid
    const f = fid <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(fid) : fid
    await exchange(t, `ids ${sid}/${fid}`, [HELLO, notify(s, f)], ['hello', ['ack', s, f]])
  }
  t.equal(server.stats.protocolErrors.get('ERR_INTERNAL'), undefined, 'no internal error along the way')
  t.ok(await eventually(() => server.stats.connectionsOpen === 0), 'nothing left open')
})
