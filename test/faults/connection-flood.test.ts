// 2,500 SPOP connections opened at once, from a child process (so that the
// memory measured here is the agent's alone): every one is served (HELLO,
// some a NOTIFY) up to maxConnections and refused beyond, the agent's memory
// stays bounded, all close cleanly, the counters come back to zero, and a
// new connection is served afterwards.

import { execFileSync } from 'node:child_process'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { AgentServer } from '../../src/agent/index.js'
import { encodeFrame } from '../../src/spop/index.js'
import { ConnectionFlood } from '../helpers/connection-flood.js'
import { FakeHaproxy, haproxyHello } from '../../harness/spop-client.js'
import { silentLogger } from '../helpers/logger.js'
import { eventually } from '../../harness/wait.js'

const N = 2500
const MAX_CONNECTIONS = 2000
const NOTIFY_EVERY = 4
// Per accepted idle connection the agent holds a net.Socket and its libuv
// handle, a Connection (state, a FrameReader, a 512-byte output Writer) and a
// pino child logger: measured at about 4 KB of heap. 20 KB each (40 MB for
// 2,000) leaves room for GC noise, and still fails if a connection ever
// pre-allocates a max-size frame buffer (16 KB) or keeps what it received.
const HEAP_PER_CONN_BOUND = 20 * 1024
// RSS adds the allocator's and V8's slack to that; 2,000 idle connections
// under 60 MB of RSS growth, as the issue asks.
const RSS_BOUND = 60 * 1024 * 1024
// Outside the heap, a connection owns its 512-byte output buffer (1 MB for
// 2,000, measured): 4 KB each fails on anything frame-sized kept per connection.
const BUFFERS_PER_CONN_BOUND = 4 * 1024

// A full GC before each reading, so the figures are live memory, not garbage.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const live = (): NodeJS.MemoryUsage => {
  gc()
  gc()
  return process.memoryUsage()
}
const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`

const nofile = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
const enoughFds = nofile === Infinity || Number.isNaN(nofile) || nofile >= 5000

t.test(`${N} connections at once, maxConnections ${MAX_CONNECTIONS}`, { skip: enoughFds ? false : `ulimit -n is ${nofile}; ${N} connections need about 5,000 descriptors (raise it with ulimit -n 8192)` }, async (t) => {
  const server = new AgentServer({
    handler: () => [],
    logger: silentLogger(),
    listen: { host: '127.0.0.1', port: 0 },
    maxConnections: MAX_CONNECTIONS,
    // The whole burst must fit in the accept queue (capped by net.core.somaxconn).
    backlog: 4096,
  })
  const addr = (await server.listen()) as { host: string; port: number }
  t.teardown(() => server.destroy())
  const s = server.stats

  const before = live()
  const flood = new ConnectionFlood({
    host: addr.host,
    port: addr.port,
    n: N,
    hello: encodeFrame(haproxyHello()),
    notify: encodeFrame({ type: 'notify', flags: 1, streamId: 1, frameId: 1, messages: [{ name: 'm', args: [] }] }),
    notifyEvery: NOTIFY_EVERY,
  })
  t.teardown(() => flood.kill())

  const settled = await flood.settled()
  t.comment(`settled in ${settled.ms} ms: ${JSON.stringify(settled)}`)
  t.equal(settled.served, MAX_CONNECTIONS, `${MAX_CONNECTIONS} served (AGENT-HELLO, and the ACK where a NOTIFY was sent)`)
  t.equal(settled.refused, N - MAX_CONNECTIONS, `${N - MAX_CONNECTIONS} refused`)
  t.equal(settled.other, 0, 'none half-served or failed')
  t.equal(s.connectionsRejected, N - MAX_CONNECTIONS, 'refusals counted in stats.connectionsRejected')
  t.equal(s.connectionsOpen, MAX_CONNECTIONS, 'stats.connectionsOpen')
  t.equal(s.helloCompleted, MAX_CONNECTIONS, 'every accepted connection completed its HELLO')
  t.equal(s.acksSent, settled.acked, `every NOTIFY on an accepted connection ACKed (${settled.acked})`)
  t.ok(settled.acked >= Math.floor(MAX_CONNECTIONS / NOTIFY_EVERY) - (N - MAX_CONNECTIONS), 'a share of them sent a NOTIFY')

  const during = live()
  const heap = during.heapUsed - before.heapUsed
  const rss = during.rss - before.rss
  const buffers = during.arrayBuffers - before.arrayBuffers
  t.comment(
    `agent memory for ${MAX_CONNECTIONS} open connections: heap +${mb(heap)} (${(heap / MAX_CONNECTIONS / 1024).toFixed(1)} KB each), ` +
      `ArrayBuffers +${mb(buffers)}, RSS +${mb(rss)}`,
  )
  t.ok(heap < HEAP_PER_CONN_BOUND * MAX_CONNECTIONS, `heap growth ${mb(heap)} < ${mb(HEAP_PER_CONN_BOUND * MAX_CONNECTIONS)}`)
  t.ok(buffers < BUFFERS_PER_CONN_BOUND * MAX_CONNECTIONS, `ArrayBuffer growth ${mb(buffers)} < ${mb(BUFFERS_PER_CONN_BOUND * MAX_CONNECTIONS)}`)
  t.ok(rss < RSS_BOUND, `RSS growth ${mb(rss)} < ${mb(RSS_BOUND)}`)

  const closed = await flood.close()
  t.comment(`closed in ${closed.ms} ms: ${JSON.stringify(closed)}`)
  t.same([closed.clean, closed.errors], [MAX_CONNECTIONS, 0], 'every open connection closed cleanly (FIN answered by FIN, no reset)')
  t.ok(await eventually(() => s.connectionsOpen === 0, 10_000), 'stats.connectionsOpen back to 0')
  t.equal(server.connections.size, 0, 'no connection left in the server')
  t.equal(s.closedWithoutDisconnect, MAX_CONNECTIONS, 'each counted as a close without DISCONNECT (HAProxy 3.x style), not an error')
  t.equal(s.protocolErrors.size, 0, 'no protocol error')
  t.equal(s.disconnectsSent.size, 0, 'no AGENT-DISCONNECT needed')

  const after = live()
  t.comment(`after close: heap ${mb(after.heapUsed - before.heapUsed)} over the start`)
  t.ok(after.heapUsed - before.heapUsed < heap / 2 + 4 * 1048576, 'the memory of closed connections is released')

  const h = await FakeHaproxy.connect(addr)
  t.equal((await h.hello()).type, 'agent-hello', 'a new connection is served afterwards')
  h.notify(5, 1, [])
  t.equal((await h.next()).type, 'ack', 'and its NOTIFY ACKed')
  h.destroy()
})
