// Deeply repeated arguments against the real tracing handler (startDaemon,
// exporting over OTLP/HTTP to an in-test receiver): 255 tag= / log= / span=
// arguments in one message, one tag with 252 continuations, and max-size
// frames (16380 bytes) packed with messages. Every NOTIFY is ACKed, the
// per-span caps (attributes, events), the per-tree span cap and the open-tree
// cap hold and are counted, and memory stays bounded.

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { encodeFrame, type Message, type NamedValue, tv } from '../../src/spop/index.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { silentLogger } from '../helpers/logger.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'

const MAX_ATTRIBUTES = 16
const MAX_EVENTS = 8
const MAX_SPANS_PER_TREE = 32
const MAX_TREES = 200
const MAX_FRAME = 16380 // what HAProxy announces, and so the negotiated size

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const heapUsed = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const s = (name: string, value: string): NamedValue => ({ name, ...tv.string(value) })
const cont = (value: string): NamedValue => s('', value)
const msg = (name: string, args: NamedValue[]): Message => ({ name, args })
const notifyLength = (messages: Message[]): number =>
  encodeFrame({ type: 'notify', flags: 1, streamId: 1, frameId: 1, messages }).length - 4

/** Messages from `make(i)` until the next would not fit, then a padding message to exactly MAX_FRAME bytes. */
function fillFrame(make: (i: number) => Message): Message[] {
  const HEADER = 7 // type, flags, stream-id 1, frame-id 1
  const size = (m: Message): number => notifyLength([m]) - HEADER
  const out: Message[] = []
  let total = HEADER
  // Leave room for the padding message (its own overhead is under 10 bytes).
  for (let next = make(0); total + size(next) <= MAX_FRAME - 16; next = make(out.length)) {
    out.push(next)
    total += size(next)
  }
  for (let k = 0; k < 256; k++) {
    const pad = msg('pad', [cont('x'.repeat(k))])
    if (total + size(pad) === MAX_FRAME) return [...out, pad]
  }
  throw new Error('could not pad the frame to its maximum size')
}

t.test('repeated arguments and packed max-size frames through the tracing handler', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      tree: { ...DEFAULT_CONFIG.tree, maxSpansPerTree: MAX_SPANS_PER_TREE, maxTrees: MAX_TREES },
      spanLimits: { ...DEFAULT_CONFIG.spanLimits, maxAttributes: MAX_ATTRIBUTES, maxEvents: MAX_EVENTS },
      export: { ...DEFAULT_CONFIG.export, exporter: 'otlp', endpoint: receiver.tracesUrl, scheduledDelayMs: 50 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const tracing = daemon.trees.stats
  const h = await FakeHaproxy.connect(daemon.address)
  t.teardown(() => h.destroy())
  const ENGINE = '0f3c2b1a-0000-4000-8000-00000000fa17'
  t.equal((await h.hello({ engineId: ENGINE })).type, 'agent-hello')

  let sid = 0
  const send = async (messages: Message[], what: string): Promise<void> => {
    const id = ++sid
    t.ok(notifyLength(messages) <= MAX_FRAME, `${what}: ${notifyLength(messages)} bytes, within max-frame-size`)
    h.notify(id, 1, messages)
    const ack = await h.next(5000)
    t.same([ack.type, ack.streamId, ack.frameId], ['ack', id, 1], `${what}: ACKed`)
    daemon.tracing.drain() // answered first, applied in batches: apply it now for the counters below
  }
  const traceOf = async (uniqueId: string, spans: number) => {
    await receiver.waitForSpans(receiver.spans.length, 0)
    const deadline = Date.now() + 10_000
    for (;;) {
      const got = receiver.spans.filter((x) => x.attributes['haproxy.unique_id'] === uniqueId || x.name.startsWith(`${uniqueId}:`))
      if (got.length >= spans || Date.now() > deadline) return got
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  // 1. One message, 255 arguments: 126 tag= each with its value as a continuation.
  const tags: NamedValue[] = []
  for (let i = 0; i < 126; i++) tags.push(s('tag', `k_${i}`), cont(`v_${i}`))
  const hits = tracing.limits
  const dropped0 = hits.attributesDropped
  const m1 = msg('tags', [s('id', 'u-tags'), s('span', 'u-tags:root'), ...tags, s('finish', '*')])
  t.equal(m1.args.length, 255, '255 arguments, the most one message can carry')
  await send([m1], '126 tag= with continuations')
  const [root] = await traceOf('u-tags', 1)
  t.ok(root, 'the span is exported')
  if (root) {
    const keys = Object.keys(root.attributes)
    const own = keys.filter((k) => !k.startsWith('k_')).length // set by the agent (haproxy.unique_id)
    t.equal(keys.length, MAX_ATTRIBUTES, `attributes capped at ${MAX_ATTRIBUTES}`)
    t.equal(root.droppedAttributesCount, 126 + own - MAX_ATTRIBUTES, `the rest counted in droppedAttributesCount (${root.droppedAttributesCount})`)
    t.equal(hits.attributesDropped - dropped0, root.droppedAttributesCount, 'and in the agent\'s attributesDropped counter')
  }

  // 2. One tag= with 251 continuations: one attribute, the values joined, then cut to the value-length cap.
  const truncated0 = hits.valuesTruncated
  const maxLen = daemon.store!.spanLimits.maxAttributeLength || Infinity
  const piece = 'y'.repeat(50)
  const m2 = msg('joined', [s('id', 'u-join'), s('span', 'u-join:root'), s('tag', 'big'), ...Array.from({ length: 251 }, () => cont(piece)), s('finish', '*')])
  t.equal(m2.args.length, 255)
  await send([m2], 'one tag= with 251 continuations')
  const [joined] = await traceOf('u-join', 1)
  t.equal(String(joined?.attributes.big).length, Math.min(251 * 50, maxLen), `one attribute, every continuation joined, at most ${maxLen} characters`)
  t.equal(hits.valuesTruncated - truncated0, 251 * 50 > maxLen ? 1 : 0, 'a cut value is counted in valuesTruncated')

  // 3. 126 log= with continuations: events capped.
  const events0 = hits.eventsDropped
  const logs: NamedValue[] = []
  for (let i = 0; i < 126; i++) logs.push(s('log', `e_${i}`), cont(`line ${i}`))
  await send([msg('logs', [s('id', 'u-logs'), s('span', 'u-logs:root'), ...logs, s('finish', '*')])], '126 log= with continuations')
  const [logged] = await traceOf('u-logs', 1)
  t.equal(logged?.events.length, MAX_EVENTS, `events capped at ${MAX_EVENTS}`)
  t.equal(logged?.droppedEventsCount, 126 - MAX_EVENTS, 'the rest counted in droppedEventsCount')
  t.equal(hits.eventsDropped - events0, 126 - MAX_EVENTS, 'and in the agent\'s eventsDropped counter')

  // 4. 254 span= with distinct names in one message: the per-tree cap holds.
  const capBefore = tracing.spansDropped.get('span_cap') ?? 0
  const spans = Array.from({ length: 254 }, (_, i) => s('span', `u-spans:${i}`))
  await send([msg('spans', [s('id', 'u-spans'), ...spans])], '254 span= in one message')
  t.equal((tracing.spansDropped.get('span_cap') ?? 0) - capBefore, 254 - MAX_SPANS_PER_TREE, `spans beyond ${MAX_SPANS_PER_TREE} dropped and counted (span_cap)`)
  await send([msg('end', [s('id', 'u-spans'), s('finish', '*')])], 'finish=*')
  const tree = await traceOf('u-spans', MAX_SPANS_PER_TREE)
  t.equal(tree.length, MAX_SPANS_PER_TREE, `the tree is exported with ${MAX_SPANS_PER_TREE} spans`)

  // 5. Max-size frames packed with span= messages for one request: the first frame
  // opens 32 spans, every later message names one of them (selected, not created) or is dropped.
  const one = fillFrame((i) => msg('m', [s('id', 'u-packed'), s('span', `u-packed:${i}`)]))
  t.comment(`a 16380-byte frame holds ${one.length - 1} span= messages for one request`)
  const packedCap = tracing.spansDropped.get('span_cap') ?? 0
  for (let k = 0; k < 5; k++) await send(one, `packed frame ${k} (one request)`)
  t.equal((tracing.spansDropped.get('span_cap') ?? 0) - packedCap, 5 * (one.length - 1 - MAX_SPANS_PER_TREE), `all but ${MAX_SPANS_PER_TREE} spans dropped, in every frame`)
  t.equal(daemon.store!.get(ENGINE, 'u-packed')?.spanCount, MAX_SPANS_PER_TREE, `the tree holds ${MAX_SPANS_PER_TREE} spans`)

  // 6. Max-size frames of messages for distinct requests: the open-tree cap holds, memory stays flat.
  const treeCapBefore = tracing.messagesRejected.get('tree_cap') ?? 0
  const missingIdBefore = tracing.messagesRejected.get('missing_id') ?? 0
  const heapBefore = heapUsed()
  let n = 0
  const FRAMES = 100
  let perFrame = 0
  for (let k = 0; k < FRAMES; k++) {
    const frame = fillFrame(() => msg('m', [s('id', `req-${n++}`), s('span', 'HAProxy session'), s('tag', 'http.url'), cont('/x')]))
    perFrame = frame.length - 1
    await send(frame, `distinct-request frame ${k}`)
  }
  const grown = heapUsed() - heapBefore
  const attempted = FRAMES * perFrame
  t.comment(`${FRAMES} frames x ${perFrame} requests = ${attempted} trees attempted; heap +${(grown / 1048576).toFixed(1)} MB`)
  t.ok(daemon.trees.size <= MAX_TREES, `open trees stay at the cap (${daemon.trees.size} <= ${MAX_TREES})`)
  t.ok((tracing.messagesRejected.get('tree_cap') ?? 0) - treeCapBefore >= attempted - MAX_TREES, 'the requests beyond it are refused and counted (tree_cap)')
  t.equal((tracing.messagesRejected.get('missing_id') ?? 0) - missingIdBefore, FRAMES, 'the padding messages (no id=) are rejected and counted')
  // 200 open trees of one span are well under a megabyte; 1.6 MB of messages went through.
  t.ok(grown < 16 * 1048576, `memory bounded: heap +${(grown / 1048576).toFixed(1)} MB after ${((FRAMES * MAX_FRAME) / 1048576).toFixed(1)} MB of messages`)

  t.equal(daemon.agent.stats.protocolErrors.size, 0, 'no protocol error')
  t.equal(daemon.agent.stats.handlerErrors, 0, 'the handler never threw')
  t.equal(daemon.agent.stats.acksSent, sid, 'one ACK per NOTIFY')
})
