// A Node child process spoken to in JSON lines over its stdin and stdout (the
// agent under test, the OTLP sink), started and stopped by the harness
// (harness/process.ts: tracked, stopped by PID on exit or SIGINT), and the
// child's own side of the protocol. Every wait is bounded.
//
// Protocol: one JSON object per stdout line. {"type":"listening","port":N}
// (or "path":P) once, when it accepts connections; then one reply line per
// command line written to its stdin, in order (the reply's `type` names the
// command's answer). Lines that are not JSON are passed on to stderr.

import { createInterface } from 'node:readline'
import { type Proc, spawnTracked } from '../harness/process.js'

interface Waiter {
  type: string
  resolve: (msg: Record<string, unknown>) => void
  reject: (err: Error) => void
}

export interface StartOptions {
  /** For messages: "the agent", "the sink". */
  name: string
  script: string
  args?: readonly string[]
  nodeArgs?: readonly string[]
  timeoutMs?: number
}

export class JsonLineChild {
  private readonly waiters: Waiter[] = []
  private exited = false

  private constructor(
    readonly name: string,
    private readonly p: Proc,
    /** The port from the "listening" line (0 for a unix socket). */
    readonly port: number,
    /** The unix socket path from the "listening" line, if it listens on one. */
    readonly path: string | null,
    /** The whole "listening" line (a child may say more there). */
    readonly listening: Record<string, unknown>,
  ) {}

  get pid(): number {
    return this.p.pid
  }

  static start(o: StartOptions): Promise<JsonLineChild> {
    const timeoutMs = o.timeoutMs ?? 15_000
    const p = spawnTracked({
      name: o.name,
      command: process.execPath,
      args: [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])],
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    const proc = p.child
    return new Promise((resolve, reject) => {
      let child: JsonLineChild | null = null
      const timer = setTimeout(() => {
        void p.stop(1000, 'SIGKILL')
        reject(new Error(`${o.name} did not start listening within ${timeoutMs} ms`))
      }, timeoutMs)
      void p.exited.then(() => {
        clearTimeout(timer)
        const err = new Error(`${o.name} exited (code ${proc.exitCode}, signal ${proc.signalCode})${p.tail() ? `\n${p.tail()}` : ''}`)
        if (child === null) reject(err)
        else child.onExit(err)
      })
      // The child's stdin closing (it exited) must not crash us with EPIPE.
      proc.stdin!.on('error', () => {})
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        let msg: Record<string, unknown>
        try {
          msg = JSON.parse(line) as Record<string, unknown>
        } catch {
          console.error(`${o.name}: ${line}`)
          return
        }
        if (msg.type === 'listening' && child === null && (typeof msg.port === 'number' || typeof msg.path === 'string')) {
          clearTimeout(timer)
          child = new JsonLineChild(o.name, p, typeof msg.port === 'number' ? msg.port : 0, typeof msg.path === 'string' ? msg.path : null, msg)
          resolve(child)
        } else if (child !== null) {
          const i = child.waiters.findIndex((w) => w.type === msg.type)
          if (i >= 0) child.waiters.splice(i, 1)[0]!.resolve(msg)
        }
      })
    })
  }

  /** Writes `command` on the child's stdin and waits for the first reply line of type `replyType`. */
  request<T>(command: string, replyType: string, timeoutMs = 5000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`))
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new Error(`no "${replyType}" reply from ${this.name} within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter: Waiter = {
        type: replyType,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as T)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.waiters.push(waiter)
      this.p.child.stdin!.write(`${command}\n`)
    })
  }

  private onExit(err: Error): void {
    this.exited = true
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  /** Waits at most `timeoutMs` for the child to exit by itself; true if it did. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)))
    const r = await Promise.race([this.p.exited, late])
    clearTimeout(timer)
    return r !== 'late'
  }

  /** SIGTERM by PID, then SIGKILL if it is still there after `timeoutMs` (a CPU profile takes a moment to write). */
  stop(timeoutMs: number): Promise<void> {
    return this.p.stop(timeoutMs)
  }
}

/**
 * The child's side: calls `onCommand` for each non-empty line on stdin, and
 * `onEnd` when stdin closes (the parent is gone: no orphan keeps a port and
 * a core busy).
 */
export function onStdinCommands(onCommand: (cmd: string) => void, onEnd: () => void): void {
  process.stdin.setEncoding('utf8')
  let line = ''
  process.stdin.on('data', (chunk: string) => {
    line += chunk
    for (let nl = line.indexOf('\n'); nl >= 0; nl = line.indexOf('\n')) {
      const cmd = line.slice(0, nl).trim()
      line = line.slice(nl + 1)
      if (cmd !== '') onCommand(cmd)
    }
  })
  process.stdin.on('end', onEnd)
}

/** The child's side: one JSON line on stdout. */
export function print(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}
