// Opens thousands of SPOP connections at once from a CHILD process, so that
// the test process measures the memory of the agent alone, not of the client
// sockets too. Each connection sends a HELLO (every `notifyEvery`-th one a
// NOTIFY right behind it) and waits for the AGENT-HELLO (and the ACK), or for
// the agent to close it (refused). The child reports once every connection
// has settled, holds them open until told to close, then ends them all and
// reports again. Plain JavaScript in the child: no TypeScript loader needed.

import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface FloodSettled {
  /** AGENT-HELLO received (and the ACK when a NOTIFY was sent), still open. */
  served: number
  /** ACKs received. */
  acked: number
  /** Closed by the agent before any frame: refused. */
  refused: number
  /** Anything else: closed after a partial answer, or a connect error. */
  other: number
  /** Milliseconds from the first connect() to the last connection settling. */
  ms: number
}

export interface FloodClosed {
  /** Connections that closed after our end(), with no error. */
  clean: number
  /** Closed with an error (reset). */
  errors: number
  ms: number
}

const CHILD = String.raw`
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
const o = JSON.parse(process.argv[1])
const HELLO = Buffer.from(o.hello, 'hex')
const NOTIFY = Buffer.from(o.notify, 'hex')
const conns = []
let settled = 0
const t0 = Date.now()
const out = (x) => process.stdout.write(JSON.stringify(x) + '\n')
function settle(c) {
  if (c.settled) return
  if (!(c.closed || (c.hello && (!c.wantAck || c.ack)))) return
  c.settled = true
  if (++settled === o.n) {
    const r = { served: 0, acked: 0, refused: 0, other: 0, ms: Date.now() - t0 }
    for (const x of conns) {
      if (x.ack) r.acked++
      if (!x.closed) r.served++
      else if (!x.hello && !x.gotData && !x.connectError) r.refused++
      else r.other++
    }
    out({ event: 'settled', ...r })
  }
}
for (let i = 0; i < o.n; i++) {
  const s = connect({ host: o.host, port: o.port })
  const c = { s, buf: Buffer.alloc(0), wantAck: i % o.notifyEvery === 0, hello: false, ack: false, gotData: false, closed: false, settled: false, connectError: false, error: false }
  conns.push(c)
  s.setNoDelay(true)
  s.on('connect', () => s.write(c.wantAck ? Buffer.concat([HELLO, NOTIFY]) : HELLO))
  s.on('data', (d) => {
    c.gotData = true
    c.buf = Buffer.concat([c.buf, d])
    while (c.buf.length >= 4) {
      const len = c.buf.readUInt32BE(0)
      if (c.buf.length < 4 + len) break
      if (c.buf[4] === 101) c.hello = true
      if (c.buf[4] === 103) c.ack = true
      c.buf = c.buf.subarray(4 + len)
    }
    settle(c)
  })
  s.on('error', () => {
    c.error = true
    if (!s.connecting) return
    c.connectError = true
  })
  s.on('close', () => {
    c.closed = true
    c.closedAt = Date.now()
    settle(c)
    if (closing && conns.every((x) => x.closed)) {
      const r = { clean: 0, errors: 0, ms: Date.now() - closing }
      for (const x of conns) if (x.endedByUs) x.error ? r.errors++ : r.clean++
      out({ event: 'closed', ...r })
      process.exit(0)
    }
  })
}
let closing = 0
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'close') return
  closing = Date.now()
  let open = 0
  for (const c of conns) if (!c.closed) { c.endedByUs = true; open++; c.s.end() }
  if (open === 0) { out({ event: 'closed', clean: 0, errors: 0, ms: 0 }); process.exit(0) }
})
`

export class ConnectionFlood {
  private readonly child: ChildProcess
  private readonly events: Array<Record<string, unknown>> = []
  private readonly waiters: Array<() => void> = []
  private stderr = ''

  constructor(opts: { host: string; port: number; n: number; hello: Buffer; notify: Buffer; notifyEvery: number }) {
    const arg = JSON.stringify({ ...opts, hello: opts.hello.toString('hex'), notify: opts.notify.toString('hex') })
    this.child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, arg], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()))
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.events.push(JSON.parse(line) as Record<string, unknown>)
      for (const w of this.waiters.splice(0)) w()
    })
    this.child.once('exit', () => {
      for (const w of this.waiters.splice(0)) w()
    })
  }

  private async waitEvent(name: string, ms: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms
    for (;;) {
      const e = this.events.find((x) => x.event === name)
      if (e) return e
      const left = deadline - Date.now()
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`connection flood: no "${name}" within ${ms} ms (exit ${this.child.exitCode}) ${this.stderr}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Resolves once every connection is served, refused or failed. */
  settled(ms = 30_000): Promise<FloodSettled> {
    return this.waitEvent('settled', ms) as unknown as Promise<FloodSettled>
  }

  /** Ends every open connection; resolves once all are closed. */
  close(ms = 30_000): Promise<FloodClosed> {
    this.child.stdin!.write('close\n')
    return this.waitEvent('closed', ms) as unknown as Promise<FloodClosed>
  }

  /** Stops the child (and so its sockets) if it is still running. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}
