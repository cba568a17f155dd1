// Hostile bytes at the socket, property-based (fast-check, bounded run): one
// AgentServer takes thousands of connections carrying random bytes, mutated
// valid frames, valid frames cut short, and valid handshakes followed by
// garbage. For each, the agent answers only with frames it may send, ends
// with at most one AGENT-DISCONNECT whose status SPOE.txt defines for the
// state the connection was in, and closes; meanwhile a well-behaved
// connection keeps getting its ACKs and the process never throws.
// test/spop/fuzz.test.ts covers the pure codec; this covers the socket path.

import t from 'tap'
import fc from 'fast-check'
import { AgentServer } from '../../src/agent/index.js'
import {
  disconnectFrame,
  disconnectInfo,
  encodeFrame,
  type Frame,
  kvGet,
  type Message,
  STATUS_MESSAGES,
  type NamedValue,
  tv,
  type TypedValue,
} from '../../src/spop/index.js'
import { FakeHaproxy, haproxyHello } from '../../harness/spop-client.js'
import { captureLogger } from '../helpers/logger.js'
import { type ProbeResult, probe } from '../../harness/spop-probe.js'
import { eventually } from '../../harness/wait.js'

// About 5,000 hostile connections in a few seconds: runs x (1 to 10) cases per run.
const RUNS = 1000
const MAX_CASES_PER_RUN = 10

// Statuses an AGENT-DISCONNECT may carry, by state (SPOE.txt 3.5, docs/PROTOCOL.md):
// before the handshake, HELLO errors; after it, frame errors, and the
// fragmentation ones only for the side that negotiated fragmentation.
const BEFORE_HELLO = new Set([0, 3, 4, 5, 6, 8, 9])
const AFTER_HELLO = new Set([0, 3, 4, 10])
const AFTER_HELLO_FRAG = new Set([0, 3, 4, 11, 12])
const DEFINED_STATUS = new Set(Object.keys(STATUS_MESSAGES).map(Number))

// ---- generators -------------------------------------------------------------

const value: fc.Arbitrary<TypedValue> = fc.oneof(
  fc.constant(tv.null()),
  fc.boolean().map(tv.bool),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(tv.int64),
  fc.ipV4().map(tv.ipv4),
  fc.string({ maxLength: 30 }).map(tv.string),
  fc.uint8Array({ maxLength: 20 }).map((b) => tv.binary(Buffer.from(b))),
)
const arg = fc.tuple(fc.constantFrom('id', 'span', 'tag', '', 'x'), value).map(([name, v]): NamedValue => ({ name, ...v }))
const messages = fc.array(
  fc.record({ name: fc.string({ maxLength: 12 }), args: fc.array(arg, { maxLength: 6 }) }),
  { maxLength: 3 },
) as fc.Arbitrary<Message[]>
const id = fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))

const hello = fc
  .record({
    capabilities: fc.constantFrom('', 'pipelining', 'pipelining,async', 'pipelining,async,fragmentation'),
    maxFrameSize: fc.oneof(fc.constant(16380), fc.integer({ min: 256, max: 16380 })),
    healthcheck: fc.integer({ min: 0, max: 9 }).map((n) => n === 0), // 1 in 10
  })
  .map((o) => encodeFrame(haproxyHello(o)))

/** A frame a well-behaved HAProxy could send after the handshake, and the ids of the ACK it expects. */
interface Valid {
  bytes: Buffer
  ack: { streamId: number | bigint; frameId: number | bigint } | null
}
const notify: fc.Arbitrary<Valid> = fc.record({ streamId: id, frameId: id, messages }).map((n) => ({
  bytes: encodeFrame({ type: 'notify', flags: 1, ...n }),
  ack: { streamId: n.streamId, frameId: n.frameId },
}))
const unknown: fc.Arbitrary<Valid> = fc
  .record({
    wireType: fc.oneof(fc.integer({ min: 4, max: 100 }), fc.integer({ min: 104, max: 255 })),
    streamId: id,
    frameId: id,
    payload: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  })
  .map((u) => ({ bytes: encodeFrame({ type: 'unknown', flags: 1, ...u }), ack: null }))
const validSeq = fc.record({
  hello: fc.constant(encodeFrame(haproxyHello())),
  frames: fc.array(fc.oneof({ weight: 4, arbitrary: notify }, { weight: 1, arbitrary: unknown }), { maxLength: 6 }),
})

/** Any frame at all, agent-side types and a DISCONNECT with any status included. */
const anyFrame: fc.Arbitrary<Buffer> = fc.oneof(
  hello,
  notify.map((n) => n.bytes),
  unknown.map((u) => u.bytes),
  fc
    .oneof(
      fc.nat().map(tv.uint32),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map(tv.int32),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(tv.uint64),
      fc.string({ maxLength: 5 }).map(tv.string),
    )
    .map((status) => {
      const f = disconnectFrame('haproxy-disconnect', 0, 'x')
      return encodeFrame({ ...f, kv: [{ name: 'status-code', ...status }, f.kv[1]!] })
    }),
  fc.constantFrom<Frame>(
    { type: 'ack', flags: 1, streamId: 1, frameId: 1, actions: [] },
    { type: 'agent-hello', flags: 1, streamId: 0, frameId: 0, kv: [] },
    disconnectFrame('agent-disconnect', 0, 'normal'),
  ).map(encodeFrame),
  fc
    .record({ wireType: fc.constantFrom(0, 3), flags: fc.constantFrom(0, 1, 2, 3), payload: fc.uint8Array({ maxLength: 30 }) })
    .map((f) => encodeFrame({ type: 'fragment', streamId: 1, frameId: 1, ...f, payload: Buffer.from(f.payload) })),
)

type Mutation = ['flip', number, number] | ['cut', number] | ['insert', number, Uint8Array] | ['length', number, number]
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.constant('flip' as const), fc.nat(), fc.integer({ min: 0, max: 255 })),
  fc.tuple(fc.constant('cut' as const), fc.nat()),
  fc.tuple(fc.constant('insert' as const), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })),
  fc.tuple(fc.constant('length' as const), fc.nat(), fc.oneof(fc.nat(300), fc.constant(0xffffffff), fc.nat())),
)

function mutate(input: Buffer, muts: readonly Mutation[]): Buffer {
  let b = Buffer.from(input)
  for (const m of muts) {
    if (b.length === 0) break
    const at = m[1] % b.length
    if (m[0] === 'flip') b[at] = m[2]
    else if (m[0] === 'cut') b = b.subarray(0, at)
    else if (m[0] === 'insert') b = Buffer.concat([b.subarray(0, at), m[2], b.subarray(at)])
    else if (b.length >= 4) b.writeUInt32BE(m[2] >>> 0, Math.min(at, b.length - 4))
  }
  return b
}

/** Splits `b` at the given offsets, so one frame may arrive over several writes. */
function chunk(b: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % b.length)))].sort((x, y) => x - y)
  const out: Buffer[] = []
  let pos = 0
  for (const c of at) {
    out.push(b.subarray(pos, c))
    pos = c
  }
  out.push(b.subarray(pos))
  return out
}

type Case =
  | { kind: 'random'; bytes: Buffer; cuts: number[] }
  | { kind: 'mutated'; bytes: Buffer; cuts: number[] }
  | { kind: 'hello+garbage'; hello: Buffer; garbage: Buffer; cuts: number[] }
  | { kind: 'valid+garbage'; seq: { hello: Buffer; frames: Valid[] }; garbage: Buffer }
  | { kind: 'cut'; seq: { hello: Buffer; frames: Valid[] }; at: number; reset: boolean }

const cuts = fc.array(fc.nat(), { maxLength: 4 })
const garbage = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.array(anyFrame, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 4 })).map(
    ([fs, ms]) => mutate(Buffer.concat(fs), ms),
  ),
)
const oneCase: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)), cuts }),
  fc.record({
    kind: fc.constant('mutated' as const),
    bytes: fc
      .tuple(fc.option(hello, { nil: undefined }), fc.array(anyFrame, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
      .map(([h, fs, ms]) => mutate(Buffer.concat([...(h ? [h] : []), ...fs]), ms)),
    cuts,
  }),
  fc.record({ kind: fc.constant('hello+garbage' as const), hello, garbage, cuts }),
  fc.record({ kind: fc.constant('valid+garbage' as const), seq: validSeq, garbage }),
  fc.record({ kind: fc.constant('cut' as const), seq: validSeq, at: fc.nat(), reset: fc.integer({ min: 0, max: 9 }).map((n) => n < 2) }),
)

// ---- the oracle ---------------------------------------------------------------

const seqBytes = (s: { hello: Buffer; frames: Valid[] }): Buffer => Buffer.concat([s.hello, ...s.frames.map((f) => f.bytes)])

/** What every connection must see, whatever it sent. Returns the problems found. */
function checkReply(r: ProbeResult): string[] {
  const bad: string[] = []
  if (r.decodeError !== null) bad.push(`undecodable reply: ${r.decodeError}`)
  if (!r.closed) bad.push('not closed within 2 s after our half-close')
  const f = r.frames
  let i = 0
  let hello: Frame | null = null
  if (f[0]?.type === 'agent-hello') hello = f[i++]!
  while (f[i]?.type === 'ack') {
    if (hello === null) bad.push('ACK before AGENT-HELLO')
    i++
  }
  const last = f[i]
  if (last !== undefined) {
    if (last.type !== 'agent-disconnect') bad.push(`unexpected ${last.type} frame at position ${i}`)
    else {
      const { status } = disconnectInfo(last.kv)
      const frag = hello !== null && String(kvGet((hello as { kv: NamedValue[] }).kv, 'capabilities')?.value).includes('fragmentation')
      const allowed = hello === null ? BEFORE_HELLO : frag ? AFTER_HELLO_FRAG : AFTER_HELLO
      if (!allowed.has(status)) bad.push(`status ${status} is not one the protocol defines here (${[...allowed].join(',')})`)
    }
    if (i + 1 < f.length) bad.push(`${f.length - i - 1} frame(s) after the AGENT-DISCONNECT`)
  }
  return bad
}

/** For inputs that start valid: the exact frames the valid part must produce, in order. */
function checkValidPrefix(r: ProbeResult, seq: { hello: Buffer; frames: Valid[] }, upTo: number, allowMore: boolean): string[] {
  const bad: string[] = []
  const want: Array<{ streamId: number | bigint; frameId: number | bigint } | 'hello'> = []
  let pos = seq.hello.length
  if (upTo >= pos) want.push('hello')
  for (const fr of seq.frames) {
    pos += fr.bytes.length
    if (pos > upTo) break
    if (fr.ack) want.push(fr.ack)
  }
  want.forEach((w, k) => {
    const got = r.frames[k]
    if (w === 'hello') {
      if (got?.type !== 'agent-hello') bad.push(`frame ${k}: expected AGENT-HELLO, got ${got?.type}`)
    } else if (got?.type !== 'ack' || BigInt(got.streamId) !== BigInt(w.streamId) || BigInt(got.frameId) !== BigInt(w.frameId)) {
      bad.push(`frame ${k}: expected ACK ${w.streamId}/${w.frameId}, got ${got?.type} ${got?.streamId}/${got?.frameId}`)
    }
  })
  if (!allowMore && r.frames.length !== want.length) {
    bad.push(`${r.frames.length} frames for ${want.length} expected (${r.frames.map((x) => x.type).join(', ')})`)
  }
  return bad
}

async function runCase(addr: { host: string; port: number }, c: Case): Promise<string[]> {
  switch (c.kind) {
    case 'random':
    case 'mutated':
      return checkReply(await probe(addr, chunk(c.bytes, c.cuts)))
    case 'hello+garbage':
      return checkReply(await probe(addr, chunk(Buffer.concat([c.hello, c.garbage]), c.cuts)))
    case 'valid+garbage': {
      const valid = seqBytes(c.seq)
      const r = await probe(addr, [valid, c.garbage])
      return [...checkReply(r), ...checkValidPrefix(r, c.seq, valid.length, true)]
    }
    case 'cut': {
      const all = seqBytes(c.seq)
      const at = c.at % all.length
      const r = await probe(addr, [all.subarray(0, at)], { after: c.reset ? 'reset' : 'end' })
      // A reset may discard what was in flight: only "no crash" holds then (checked globally).
      if (c.reset) return []
      // A valid stream cut short is no protocol error: the frames before the cut are answered, then a plain close.
      return [...checkReply(r), ...checkValidPrefix(r, c.seq, at, false)]
    }
  }
}

const describe = (c: Case): string =>
  JSON.stringify(c, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v))

t.test('hostile connections get a defined AGENT-DISCONNECT or a close; a good one is served throughout', async (t) => {
  const crashes: unknown[] = []
  const onCrash = (err: unknown): void => {
    crashes.push(err)
  }
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
  t.teardown(() => {
    process.off('uncaughtException', onCrash)
    process.off('unhandledRejection', onCrash)
  })

  const cap = captureLogger('warn')
  const server = new AgentServer({
    handler: () => [],
    logger: cap.logger,
    listen: { host: '127.0.0.1', port: 0 },
    // Fragmentation on, so its statuses (11, 12) and reassembly are fuzzed too.
    capabilities: ['pipelining', 'fragmentation'],
    backlog: 1024,
    // One line per key for the whole run: any peer-controlled key would show as a flood.
    logIntervalMs: 600_000,
  })
  const addr = (await server.listen()) as { host: string; port: number }
  t.teardown(() => server.destroy())

  const good = await FakeHaproxy.connect(addr)
  t.teardown(() => good.destroy())
  t.equal((await good.hello()).type, 'agent-hello', 'the well-behaved connection is up')

  let run = 0
  let cases = 0
  const kinds = new Map<string, number>()
  const started = performance.now()
  await fc.assert(
    fc.asyncProperty(fc.array(oneCase, { minLength: 1, maxLength: MAX_CASES_PER_RUN }), async (batch) => {
      const sid = ++run
      // Interleaved with the hostile batch: the good connection's NOTIFY and its ACK.
      good.notify(sid, 1, [{ name: 'ping', args: [{ name: 'n', ...tv.int64(sid) }] }])
      const [ack, ...results] = await Promise.all([good.next(2000), ...batch.map((c) => runCase(addr, c))])
      cases += batch.length
      for (const c of batch) kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1)
      if (ack.type !== 'ack' || ack.streamId !== sid || ack.frameId !== 1) {
        throw new Error(`good connection: expected ACK ${sid}/1, got ${ack.type} ${ack.streamId}/${ack.frameId}`)
      }
      results.forEach((bad, k) => {
        if (bad.length > 0) throw new Error(`${bad.join('; ')}\ncase: ${describe(batch[k]!)}`)
      })
      if (crashes.length > 0) throw new Error(`uncaught: ${String(crashes[0])}`)
    }),
    { numRuns: RUNS },
  )
  const ms = performance.now() - started
  t.comment(`${cases} hostile connections in ${ms.toFixed(0)} ms: ${JSON.stringify(Object.fromEntries(kinds))}`)
  t.ok(cases >= 2000, `thousands of cases (${cases})`)
  t.same(crashes, [], 'no uncaught exception or unhandled rejection')

  const s = server.stats
  t.equal(s.protocolErrors.get('ERR_INTERNAL'), undefined, 'every error was a protocol error, none an internal one (status 99)')
  for (const status of s.disconnectsSent.keys()) {
    t.ok(BEFORE_HELLO.has(status) || AFTER_HELLO.has(status) || AFTER_HELLO_FRAG.has(status), `status ${status} sent`)
  }
  // HAPROXY-DISCONNECTs carried random status codes: they must not become random map keys.
  const keys = [...s.disconnectsReceived.keys()]
  t.ok(keys.length > 0 && keys.every((k) => k === -1 || DEFINED_STATUS.has(k)), `HAPROXY-DISCONNECT statuses counted under bounded keys: ${keys.join(',')}`)
  const warnings = cap.lines.filter((l) => Number(l.level) >= 40)
  t.ok(warnings.length <= 30, `bad-input log lines rate-limited: ${warnings.length} for ${cases} bad connections`)
  t.ok(await eventually(() => s.connectionsOpen === 1, 3000), 'every hostile connection closed; the good one is still open')
  t.equal(server.connections.size, 1)

  good.notify(0, 99, [])
  const last = await good.next()
  t.same([last.type, last.streamId, last.frameId], ['ack', 0, 99], 'the good connection is still served at the end')
})
