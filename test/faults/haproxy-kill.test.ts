// HAProxy killed with SIGKILL in the middle of traffic, then started again.
// The real HAProxy 2.6 with the shipped configuration, the daemon in-process
// with a 1 s tree TTL, exporting over OTLP/HTTP to an in-test receiver.
// Asserted: the agent sees its SPOP connections close (a close without
// DISCONNECT, no protocol error); the trees of the requests that were in
// flight are reaped after the TTL, their open spans exported marked
// spoa_tracer.incomplete=reaped with status ERROR; a new HAProxy is served
// as before (a request gets its 9 spans).

import t from 'tap'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { NINE_SPAN_TREE } from '../../harness/flows/nine-span.js'
import { type Haproxy, startHaproxy } from '../../harness/haproxy.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { silentLogger } from '../helpers/logger.js'
import { startOrigin } from '../helpers/origin.js'
import { OtlpStatusCode, type ReceivedSpan, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)
const TTL_MS = 1000
const REAPER_MS = 1000 // startDaemon's reaper runs once a second
const SLOW = 20

t.test('SIGKILL of HAProxy mid-traffic: orphaned trees reaped, a new HAProxy served', { skip: bin === null }, async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const daemon = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      tree: { ...DEFAULT_CONFIG.tree, idleTtlMs: TTL_MS },
      export: { ...DEFAULT_CONFIG.export, exporter: 'otlp', endpoint: receiver.tracesUrl, scheduledDelayMs: 50 },
    },
    silentLogger(),
  )
  t.teardown(() => daemon.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const agentPort = (daemon.address as { port: number }).port
  const stats = daemon.agent.stats
  const tracing = daemon.trees.stats

  const haproxyOn = async (): Promise<Haproxy> => {
    const h = await startHaproxy({
      bin: bin!,
      config: 'haproxy/haproxy.cfg',
      bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
      env: {
        BACKEND_ADDR: `127.0.0.1:${origin.port}`,
        AGENT_ADDR: `127.0.0.1:${agentPort}`,
        SPOE_CONF: 'haproxy/spoe.cfg',
        SPOA_TIMEOUT_PROCESSING: '2s',
      },
    })
    t.teardown(() => h.stop())
    return h
  }
  const get = (port: number, path: string): Promise<number> =>
    fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) }).then(
      async (res) => {
        await res.text()
        return res.status
      },
      () => 0, // the connection died with HAProxy
    )
  const spansOf = (path: string): ReceivedSpan[] => {
    const fe = receiver.spans.find((s) => s.name === 'Frontend HTTP request' && s.attributes['http.url'] === path)
    return fe ? receiver.spans.filter((s) => s.traceId === fe.traceId) : []
  }

  // Before: a request is traced whole (the pipeline works at all).
  const first = await haproxyOn()
  const port1 = first.port
  t.equal(await get(port1, '/before'), 200, 'a request through the first HAProxy')
  t.ok(await eventually(() => spansOf('/before').length === 9, 10_000), 'before the kill: 9 spans for a request')

  // Concurrent traffic: slow requests (their trees stay open while the origin
  // waits) and a stream of quick ones alongside.
  const slow = Array.from({ length: SLOW }, (_, i) => get(port1, `/slow/${i}?delay=2000`))
  let quickRunning = true
  let quickOk = 0
  const quick = Array.from({ length: 4 }, async (_, w) => {
    for (let n = 0; quickRunning; n++) if ((await get(port1, `/quick/${w}/${n}`)) === 200) quickOk++
  })
  t.ok(await eventually(() => daemon.trees.size >= SLOW, 5000), `the ${SLOW} slow requests have open trees`)
  t.ok(await eventually(() => quickOk >= 10, 10_000), `quick requests are served alongside (${quickOk} so far)`)
  const openAtKill = daemon.trees.size
  const live = [...daemon.agent.connections].filter((c) => c.state === 'ready').length
  const closedBefore = stats.closedWithoutDisconnect
  const reapedBefore = tracing.treesReaped
  const ackedBefore = stats.acksSent
  t.ok(live > 0, `HAProxy holds ${live} SPOP connection(s)`)

  first.child.kill('SIGKILL')
  const killedAt = Date.now()
  await new Promise<void>((resolve) => (first.child.exitCode !== null || first.child.signalCode !== null ? resolve() : first.child.once('exit', () => resolve())))
  t.equal(first.child.signalCode, 'SIGKILL', 'HAProxy died of SIGKILL')
  quickRunning = false
  const statuses = await Promise.all(slow)
  await Promise.all(quick)
  t.ok(statuses.every((s) => s === 0), 'the slow requests died with HAProxy')
  t.comment(`${quickOk} quick requests served alongside; ${openAtKill} trees open and ${live} SPOP connections at the kill`)

  // The agent noticed: every connection closed, as a normal close.
  t.ok(await eventually(() => stats.connectionsOpen === 0, 5000), 'every SPOP connection closed')
  const noticedMs = Date.now() - killedAt
  // From here no NOTIFY can arrive: the orphans are the trees still open (or
  // already reaped) once every NOTIFY answered is applied (they wait in batches).
  daemon.tracing.drain()
  const orphans = daemon.trees.size + tracing.treesReaped - reapedBefore
  t.ok(orphans >= SLOW, `${orphans} orphaned trees, the slow requests' among them`)
  t.ok(stats.closedWithoutDisconnect - closedBefore >= live, `counted as closed without DISCONNECT (${stats.closedWithoutDisconnect - closedBefore})`)
  t.equal(stats.protocolErrors.size, 0, 'no protocol error')
  t.same([...stats.disconnectsSent.keys()].filter((s) => s !== 0), [], 'no error DISCONNECT sent')

  // The orphaned trees are reaped after the TTL, and exported marked as such.
  t.ok(await eventually(() => daemon.trees.size === 0, TTL_MS + 2 * REAPER_MS + 2000), 'open trees back to 0')
  const reapedMs = Date.now() - killedAt
  t.ok(reapedMs <= TTL_MS + 2 * REAPER_MS + 2000, `reaped ${reapedMs} ms after the kill (TTL ${TTL_MS} ms, reaper every ${REAPER_MS} ms)`)
  const reaped = tracing.treesReaped - reapedBefore
  t.equal(reaped, orphans, `treesReaped counted every orphan (${reaped})`)
  t.equal(tracing.openSpans, 0, 'no open span left')
  const incomplete = (): ReceivedSpan[] => receiver.spans.filter((s) => s.attributes['spoa_tracer.incomplete'] === 'reaped')
  t.ok(await eventually(() => new Set(incomplete().map((s) => s.traceId)).size === reaped, 10_000), 'their spans reach the collector')
  const marked = incomplete()
  t.ok(marked.every((s) => s.status.code === OtlpStatusCode.ERROR && s.status.message === DEFAULT_CONFIG.tree.timeoutMessage), 'status ERROR, "connection timeout"')
  const slowMarked = new Set(marked.filter((s) => s.name === 'HAProxy session').map((s) => s.traceId))
  for (let i = 0; i < SLOW; i++) {
    const spans = spansOf(`/slow/${i}?delay=2000`)
    t.ok(spans.length > 0 && slowMarked.has(spans[0]!.traceId), `/slow/${i}: exported, its root marked reaped`)
  }
  t.comment(`agent noticed within ${noticedMs} ms; ${reaped} trees reaped within ${reapedMs} ms; ${marked.length} spans marked reaped`)

  // A new HAProxy, on new ports, is served normally.
  const port2 = (await haproxyOn()).port
  t.equal(await get(port2, '/after'), 200, 'a request through the new HAProxy')
  t.ok(await eventually(() => spansOf('/after').length === 9, 10_000), 'after the restart: 9 spans for a request')
  const after = spansOf('/after')
  t.same(after.map((s) => s.name).sort(), Object.keys(NINE_SPAN_TREE).sort(), 'the 9 spans of the flow, each once')
  t.ok(after.every((s) => s.attributes['spoa_tracer.incomplete'] === undefined), 'none marked incomplete')
  t.ok(stats.acksSent > ackedBefore, 'ACKs flow again')
  t.equal(stats.protocolErrors.size, 0, 'still no protocol error')
})
