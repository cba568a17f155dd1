// The log intake on real sockets (UDP, TCP, unix datagram): a record becomes
// the same span tree as the SPOE compact message; bad records are counted
// by reason and logged once per reason and interval; the bounds hold.

import { createSocket } from 'node:dgram'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { type BoundLogAddress, DEFAULT_LOG_INTAKE_LIMITS, BACKLOG_READ_BYTES, LogIntake, type LogAddress } from '../../../src/intake/log/index.js'
import { SD_ID } from '../../../src/intake/log/syslog.js'
import { unixDgram } from '../../../src/intake/log/unix-dgram.js'
import { TraceStore } from '../../../src/tracing/trace-store.js'
import { captureLogger } from '../../helpers/logger.js'
import { MemorySink } from '../../helpers/memory-sink.js'
import { eventually } from '../../../harness/wait.js'

const T = '4bf92f3577b34da6a3ce929d0e0e4736'
const start = 1_700_000_000_000_000
const HDR = '<134>1 2026-12-02T09:56:18.216467+00:00 - haproxy 16168 - '
const esc = (v: string): string => v.replace(/["\\\]]/g, (c) => `\\${c}`)

function record(over: Record<string, string> = {}, msg = '00-x'): string {
  const p: Record<string, string> = {
    v: '1',
    id: '',
    compact: `00-${T}-aaaaaaaaaaaaaaaa-01`,
    parent: '00f067aa0ba902b7',
    tracestate: '',
    start: String(start),
    end: String(start + 5000),
    timers: '0 0 1 3',
    method: 'GET',
    url: '/a?b=1',
    host: 'shop.example',
    status: '200',
    version: '1.1',
    ua: 'curl/8',
    tls: '',
    frontend: 'http-in',
    backend: 'app',
    server: 'app1',
    client: '127.0.0.1',
    client_port: '40000',
    server_addr: '127.0.0.1',
    server_port: '8000',
    ...over,
  }
  return `${HDR}[${SD_ID}${Object.entries(p)
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join('')}] ${msg}\n`
}

async function intake(t: Test, addresses: LogAddress[], limits = {}) {
  const sink = new MemorySink()
  const store = new TraceStore({ sink })
  const log = captureLogger('info')
  const li = new LogIntake({ addresses, store, logger: log.logger, limits })
  const bound = await li.listen()
  t.teardown(() => li.close())
  return { li, sink, store, bound, log }
}

const portOf = (a: BoundLogAddress): number => (a as { port: number }).port

function udpSend(port: number, ...msgs: Array<string | Buffer>): Promise<void> {
  const s = createSocket('udp4')
  return new Promise((resolve) => {
    let left = msgs.length
    for (const m of msgs)
      s.send(m, port, '127.0.0.1', () => {
        if (--left === 0) {
          s.close()
          resolve()
        }
      })
  })
}

function tcpSend(port: number, ...chunks: Array<string | Buffer>): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1' }, async () => {
      for (const ch of chunks) {
        c.write(ch)
        await new Promise((r) => setTimeout(r, 5))
      }
      c.end()
    })
    c.on('close', () => resolve())
    c.on('error', reject)
  })
}

t.test('UDP: one record, the same span tree as the SPOE compact message', async (t) => {
  const { sink, bound, li, store } = await intake(t, [{ transport: 'udp', host: '127.0.0.1', port: 0 }])
  await udpSend(portOf(bound[0]!), record({ id: 'uid-1', ua: 'a "q" ]b\\c é' }))
  t.ok(await eventually(() => sink.trees.length === 1))
  t.same(
    sink.spans.map((s) => s.name),
    ['GET http-in', 'GET app', 'connect', 'server response'],
  )
  const server = sink.byName('GET http-in')
  t.same([server.traceId, server.parentSpanId, server.engineId], [T, '00f067aa0ba902b7', null])
  t.equal(server.attributes['user_agent.original'], 'a "q" ]b\\c é')
  t.equal(server.attributes['haproxy.unique_id'], 'uid-1')
  t.equal(sink.byName('GET app').spanId, 'aaaaaaaaaaaaaaaa', "the client span is the server's parent")
  t.same([li.stats.records, li.stats.traced], [1, 1])
  t.equal(store.stats.treesCompleted, 1)
  t.ok(li.kernelDrops() >= 0)
})

t.test('TCP: octet counting (HAProxy rings) and LF framing, split anywhere', async (t) => {
  const { sink, bound, li } = await intake(t, [{ transport: 'tcp', host: '127.0.0.1', port: 0 }])
  const r1 = Buffer.from(record({ id: 'a' }).trimEnd())
  const octet = Buffer.concat([Buffer.from(`${r1.length} `), r1])
  const both = Buffer.concat([octet, Buffer.from(record({ id: 'b' }))])
  await tcpSend(portOf(bound[0]!), both.subarray(0, 7), both.subarray(7, 300), both.subarray(300))
  t.ok(await eventually(() => sink.trees.length === 2))
  t.same(sink.trees.map((tr) => tr[0]!.attributes['haproxy.unique_id']), ['a', 'b'])
  t.ok(await eventually(() => li.stats.tcpConnectionsOpen === 0))
  t.equal(li.stats.tcpConnectionsTotal, 1)
})

/** A TCP intake on a free port whose streams rest readPauseMs after a short read. */
async function restingTcpIntake(t: Test, readPauseMs: number) {
  const sink = new MemorySink()
  const li = new LogIntake({
    addresses: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
    store: new TraceStore({ sink }),
    logger: captureLogger('info').logger,
    limits: { readPauseMs },
  })
  const [bound] = await li.listen()
  t.teardown(() => li.close())
  return { sink, li, bound }
}

t.test('TCP: reads rest between them (records come in fewer reads); none is lost, the end still counts', async (t) => {
  t.ok(DEFAULT_LOG_INTAKE_LIMITS.readPauseMs > 0, 'on by default')
  const { sink, li, bound } = await restingTcpIntake(t, 50)
  // 20 writes 5 ms apart, then the end of the stream, all while reads rest.
  const recs = Array.from({ length: 20 }, (_, i) => record({ id: `r${i}` }))
  await tcpSend(portOf(bound!), ...recs)
  t.ok(await eventually(() => sink.trees.length === 20), 'every record of the stream')
  t.same(
    sink.trees.map((tr) => tr[0]!.attributes['haproxy.unique_id']),
    recs.map((_, i) => `r${i}`),
    'in order',
  )
  t.ok(li.stats.tcpRests > 0 && li.stats.tcpRests <= li.stats.tcpReads, `the stream rested: ${li.stats.tcpReads} reads, ${li.stats.tcpRests} rests`)
  t.ok(await eventually(() => li.stats.tcpConnectionsOpen === 0), 'the close is seen after the rest')
  // A stream resting when the intake closes: nothing throws, nothing hangs.
  const c = connect({ port: portOf(bound!), host: '127.0.0.1' })
  await new Promise((r) => c.once('connect', r))
  c.write(record({ id: 'last' }))
  t.ok(await eventually(() => sink.trees.length === 21))
  c.on('error', () => {})
  await li.close()
  t.pass('closed during a rest')
})

t.test('TCP: no rest after a long read, so that a backlog is drained at once', async (t) => {
  // A rest far longer than the test may take: each one would show.
  const { sink, bound } = await restingTcpIntake(t, 1000)
  const one = Buffer.from(record({ id: 'x' }).trimEnd())
  const framed = Buffer.concat([Buffer.from(`${one.length} `), one])
  const n = Math.ceil((16 * BACKLOG_READ_BYTES) / framed.length)
  const c = connect({ port: portOf(bound!), host: '127.0.0.1' })
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  await new Promise((r) => c.once('connect', r))
  // A first record, then (once its read has put the stream to rest) a backlog
  // of about 8 reads of 64 KiB: one rest, then every read at once.
  c.write(framed)
  t.ok(await eventually(() => sink.trees.length === 1), 'the first record')
  const t0 = performance.now()
  c.write(Buffer.concat(Array.from({ length: n }, () => framed)))
  t.ok(await eventually(() => sink.trees.length === n + 1, 10_000), `${n} records, about 8 reads`)
  const ms = performance.now() - t0
  t.ok(ms < 2500, `drained after one rest, not one per read: ${ms.toFixed(0)} ms (rest 1000 ms)`)
})

t.test('unix datagram socket: records, permissions, stale and live sockets', { skip: unixDgram() === null ? 'node-unix-socket not installed' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'log-intake-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'log.sock')
  const sink = new MemorySink()
  const li = new LogIntake({ addresses: [{ transport: 'unix', path }], store: new TraceStore({ sink }), logger: captureLogger().logger, socketMode: 0o620 })
  await li.listen()
  t.equal(statSync(path).mode & 0o777, 0o620, '--unix-mode applies')
  const Socket = unixDgram()!
  const c = new Socket()
  const msg = Buffer.from(record({ id: 'u' }))
  await new Promise<void>((resolve, reject) => c.sendTo(msg, 0, msg.length, path, (err) => (err ? reject(err) : resolve())))
  c.close()
  t.ok(await eventually(() => sink.trees.length === 1))

  const second = new LogIntake({ addresses: [{ transport: 'unix', path }], store: new TraceStore({ sink }), logger: captureLogger().logger })
  await t.rejects(second.listen(), { code: 'EADDRINUSE' }, 'a live socket is never taken over')
  await li.close()
  t.notOk(existsSync(path), 'removed at close')

  // A socket file left by a crash (nobody receives on it): replaced.
  const stale = new Socket()
  stale.bind(path)
  stale.close()
  t.ok(existsSync(path))
  const third = new LogIntake({ addresses: [{ transport: 'unix', path }], store: new TraceStore({ sink }), logger: captureLogger().logger })
  await third.listen()
  await third.close()
  writeFileSync(path, 'not a socket')
  await t.rejects(
    new LogIntake({ addresses: [{ transport: 'unix', path }], store: new TraceStore({ sink }), logger: captureLogger().logger }).listen(),
    /not a socket/,
  )
})

t.test('bad records: counted by reason, one log line per reason and interval, nothing traced', async (t) => {
  const { sink, bound, li, log, store } = await intake(t, [{ transport: 'udp', host: '127.0.0.1', port: 0 }], { maxRecordBytes: 2000 })
  const port = portOf(bound[0]!)
  await udpSend(
    port,
    '<134>Dec  2 09:56:18 haproxy[1]: 127.0.0.1 GET /\n',
    '<134>Dec  2 09:56:18 haproxy[1]: 127.0.0.1 GET /again\n',
    `${HDR}[${SD_ID} v="1" ua="cut`,
    `${HDR}[${SD_ID} v=1]`,
    record({ v: '2' }),
    record({ compact: 'garbage' }),
    record({ start: '' }),
    record({ ua: 'x'.repeat(3000) }),
    record({ compact: `00-${T}-aaaaaaaaaaaaaaaa-00` }),
    `${HDR}- 127.0.0.1:1 [x] fe be/s 0/0/0/0/0 200 49 "GET / HTTP/1.1"\n`,
    '<133>1 2026-12-02T09:56:18.216467+00:00 - haproxy 1 - - 17 events dropped',
  )
  t.ok(await eventually(() => li.stats.records === 11))
  t.same(Object.fromEntries(li.stats.rejected), {
    not_rfc5424: 2,
    truncated: 1,
    bad_sd: 1,
    bad_version: 1,
    bad_context: 1,
    bad_time: 1,
    too_large: 1,
  })
  t.same([li.stats.sampledOut, li.stats.untraced, li.stats.haproxyDropped, li.stats.traced], [1, 1, 17, 0])
  t.equal(sink.trees.length, 0)
  t.equal(store.stats.messagesRejected.get('compact_bad_context'), 1, 'the tracing layer counts it too, as for SPOE')
  const warnings = log.lines.filter((l) => l.level === 40).map((l) => l.msg as string)
  t.equal(warnings.filter((m) => m.includes('not RFC 5424')).length, 1, 'one line for two records of one reason')
  t.ok(warnings.some((m) => m.includes('`len`')), 'the line says what to do')
  t.ok(warnings.some((m) => m.includes('HAProxy dropped log records')))
})

t.test('an oversized value is cut to the span limit, as for every span', async (t) => {
  const sink = new MemorySink()
  const store = new TraceStore({ sink, spanLimits: { maxAttributeLength: 100 } })
  const li = new LogIntake({ addresses: [], store, logger: captureLogger().logger })
  li.onRecord(Buffer.from(record({ ua: 'u'.repeat(5000) })))
  t.equal((sink.byName('GET http-in').attributes['user_agent.original'] as string).length, 100)
  t.equal(store.stats.limits.valuesTruncated, 1)
})

t.test('TCP bounds: connections, a stream that is not syslog, a record cut by the close', async (t) => {
  const { bound, li, log } = await intake(t, [{ transport: 'tcp', host: '127.0.0.1', port: 0 }], { maxConnections: 1 })
  const port = portOf(bound[0]!)
  const first = connect({ port, host: '127.0.0.1' })
  await new Promise((r) => first.once('connect', r))
  t.ok(await eventually(() => li.stats.tcpConnectionsOpen === 1))
  const refused = connect({ port, host: '127.0.0.1' })
  refused.on('error', () => {})
  await new Promise((r) => refused.once('close', r))
  t.equal(li.stats.tcpConnectionsRejected, 1)
  first.write('GET / HTTP/1.1\r\n\r\n')
  await new Promise((r) => first.once('close', r))
  t.equal(li.stats.rejected.get('bad_frame'), 1, 'closed by the agent')
  await tcpSend(port, '400 <134>1 cut')
  t.ok(await eventually(() => li.stats.rejected.get('truncated') === 1))
  t.ok(log.lines.some((l) => String(l.msg).includes('--log-max-connections')))
})

t.test('a port in use: listen() fails and closes what it had bound', async (t) => {
  const { bound } = await intake(t, [{ transport: 'tcp', host: '127.0.0.1', port: 0 }])
  const li = new LogIntake({
    addresses: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: portOf(bound[0]!) },
    ],
    store: new TraceStore({ sink: new MemorySink() }),
    logger: captureLogger().logger,
  })
  await t.rejects(li.listen(), { code: 'EADDRINUSE' })
})
