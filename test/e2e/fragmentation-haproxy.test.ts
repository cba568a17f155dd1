// End to end with the real HAProxy: SPOE messages larger than a frame.
// HAProxy 2.x fragments a NOTIFY for an agent that announced fragmentation
// (SPOE.txt 3.2.1: the receiver's capability), whatever HAProxy offered:
// three tags of a 6 KB header (18 KB, max-frame-size 16384) arrive whole as
// one span. A fragmented NOTIFY that HAProxy gives up on mid-transfer (its
// event timed out while the agent was not reading) ends with an UNSET frame
// with FIN|ABORT: the agent drops it, sends no ACK, and the connection goes
// on. HAProxy 3.x removed fragmentation: it fails such an event alone.

import t, { type Test } from 'tap'
import { type Config, DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { haproxyAtLeast, haproxyVersion, startHaproxy } from '../../harness/haproxy.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { get } from '../helpers/http.js'
import { silentLogger } from '../helpers/logger.js'
import { startOrigin } from '../helpers/origin.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { startTcpRelay } from '../helpers/tcp-relay.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
const fragments = bin !== null && !haproxyAtLeast(bin, 3, 1)
const SIX_KB = 'x'.repeat(6 * 1024)

async function stack(t: Test, timeoutProcessing: string) {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const config: Config = {
    ...DEFAULT_CONFIG,
    listen: { host: '127.0.0.1', port: 0 },
    capabilities: ['pipelining', 'fragmentation'],
    maxFrameSize: 16384,
    export: { ...DEFAULT_CONFIG.export, exporter: 'otlp', endpoint: receiver.tracesUrl, scheduledDelayMs: 50 },
  }
  const daemon = await startDaemon(config, silentLogger())
  t.teardown(() => daemon.close())
  const relay = await startTcpRelay({ host: '127.0.0.1', port: (daemon.address as { port: number }).port })
  t.teardown(() => relay.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const haproxy = await startHaproxy({
    bin: bin!,
    config: 'haproxy/test/fragmentation.cfg',
    bind: (p) => ({ FE_PORT: String(p) }),
    env: {
      ORIGIN_PORT: String(origin.port),
      AGENT_PORT: String(relay.port),
      SPOA_TIMEOUT_PROCESSING: timeoutProcessing,
    },
  })
  const fePort = haproxy.port
  t.teardown(() => haproxy.stop())
  const url = (path: string) => `http://127.0.0.1:${fePort}${path}`
  // HAProxy's first check may run before the agent listens: wait until a request is traced.
  let ready = false
  for (let i = 0; i < 10 && !ready; i++) {
    await get(url(`/warmup-${i}`))
    ready = await eventually(() => receiver.spans.some((s) => s.attributes['url.path'] === `/warmup-${i}`), 1500)
  }
  if (!ready) throw new Error(`no span through HAProxy:\n${haproxy.output()}`)
  receiver.clear()
  return { receiver, daemon, relay, haproxy, url }
}

t.test('a message larger than the frame size arrives whole (HAProxy 2.x)', { skip: bin === null || !fragments }, async (t) => {
  t.comment(haproxyVersion(bin!))
  const { receiver, daemon, url } = await stack(t, '2s')
  const fragmentedBefore = daemon.agent.stats.fragmentedNotify
  const res = await get(url('/big'), { 'x-big': SIX_KB })
  t.equal(res.status, 200)
  t.equal(res.headers['x-spoe-err'], '', 'no SPOE error for the event (set-on-error unset)')
  const [span] = await receiver.waitForSpans(1, 10_000)
  t.equal(span!.name, 'big')
  t.same([span!.attributes.h1, span!.attributes.h2, span!.attributes.h3].map((v) => (v as string).length), [4096, 4096, 4096], 'three tags, each the header cut to the attribute length limit')
  t.ok((span!.attributes.h1 as string).startsWith('xxxx'))
  t.ok(daemon.agent.stats.fragmentedNotify > fragmentedBefore, 'the NOTIFY came in fragments')
  t.equal(daemon.agent.stats.protocolErrors.size, 0, 'no protocol error')
  t.equal(daemon.trees.stats.messagesRejected.size, 0, 'nothing rejected')
})

t.test('a fragmented NOTIFY aborted by HAProxy mid-transfer is dropped; the connection goes on (HAProxy 2.x)', { skip: bin === null || !fragments }, async (t) => {
  const NOTIFY_BYTES = 720 * 1024
  for (let attempt = 1; ; attempt++) {
    const { receiver, daemon, relay, url } = await stack(t, '1s')
    const stats = daemon.agent.stats
    // The agent stops reading 100 KB into a NOTIFY of 60 x 12 KB: HAProxy's
    // socket buffers fill mid-transfer, and its `timeout processing` (1 s) expires.
    const before = relay.forwarded
    relay.pauseAfter(100_000)
    const res = await get(url('/huge'), { 'x-huge': 'y'.repeat(12 * 1024) })
    t.equal(res.status, 200, 'the request is served: a failed SPOE event never blocks it')
    t.equal(res.headers['x-spoe-err'], '1', 'HAProxy gave up on the event: set-on-error 1 (timeout)')
    t.equal(relay.paused, 1, 'one connection stalled, the one carrying the NOTIFY')
    t.equal(stats.fragmentsAborted, 0)
    relay.resume()
    // What HAProxy had sent, then its UNSET frame with FIN|ABORT.
    const aborted = await eventually(() => stats.fragmentsAborted === 1, 5000)
    // The kernel's loopback buffers can grow enough to take the whole NOTIFY
    // before the timeout (seen once in CI: 740,773 bytes): then HAProxy had
    // nothing left to abort and the case did not happen. Set up again, twice at most.
    if (!aborted && relay.forwarded - before >= NOTIFY_BYTES && attempt < 3) {
      t.comment(`attempt ${attempt}: the socket buffers took the whole NOTIFY (${relay.forwarded - before} bytes) before the timeout; again`)
      continue
    }
    t.ok(aborted, 'the agent saw the abort')
    t.ok(relay.forwarded - before < NOTIFY_BYTES, `only part of the NOTIFY had been sent (${relay.forwarded - before} bytes)`)
    t.equal(stats.protocolErrors.size, 0, 'no protocol error')
    t.equal(stats.disconnectsSent.size, 0, 'no AGENT-DISCONNECT')
    // The next requests are traced on the same connections, big or small.
    await get(url('/after'))
    await get(url('/big-after'), { 'x-big': SIX_KB })
    const spans = await receiver.waitForSpans(2, 10_000)
    t.same(spans.map((s) => s.name).sort(), ['big', 'small'], 'the next messages are traced; the aborted one never is')
    t.equal(stats.fragmentsAborted, 1)
    break
  }
})

t.test('a fragmented NOTIFY over the reassembly bound: the agent aborts it alone (ACK/ABORT) (HAProxy 2.x)', { skip: bin === null || !fragments }, async (t) => {
  const { receiver, daemon, url } = await stack(t, '2s')
  const stats = daemon.agent.stats
  // 210 x 12 KB: twice the agent's 1 MB bound, so that HAProxy is still sending when the agent aborts.
  const res = await get(url('/toobig'), { 'x-toobig': 'z'.repeat(12 * 1024) })
  t.equal(res.status, 200)
  t.equal(res.headers['x-spoe-err'], '4', 'HAProxy failed that event: set-on-error 4, "fragmentation aborted"')
  t.equal(stats.fragmentsRefused, 1, 'the agent aborted it')
  t.equal(stats.protocolErrors.size, 0, 'no protocol error')
  t.equal(stats.disconnectsSent.size, 0, 'no AGENT-DISCONNECT: other events on the connection are unaffected')
  await get(url('/after'))
  await get(url('/big-after'), { 'x-big': SIX_KB })
  const spans = await receiver.waitForSpans(2, 10_000)
  t.same(spans.map((s) => s.name).sort(), ['big', 'small'], 'the next messages are traced')
})

t.test('HAProxy 3.x has no fragmentation: a message larger than a frame fails its event alone', { skip: bin === null || fragments }, async (t) => {
  t.comment(haproxyVersion(bin!))
  const { receiver, daemon, url } = await stack(t, '2s')
  const res = await get(url('/big'), { 'x-big': SIX_KB })
  t.equal(res.status, 200, 'the request is served')
  t.equal(res.headers['x-spoe-err'], '3', 'HAProxy failed the event: set-on-error 3, "too big" (it cannot fragment)')
  await get(url('/after'))
  const spans = await receiver.waitForSpans(1, 10_000)
  t.same(spans.map((s) => s.name), ['small'], 'the next message is traced; the oversized one never reached the agent')
  t.equal(daemon.agent.stats.fragmentedNotify, 0)
  t.equal(daemon.agent.stats.protocolErrors.size, 0)
})
