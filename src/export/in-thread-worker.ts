// An export runner in the calling thread, behind the part of Worker's
// interface the pool uses (postMessage, terminate, the message, error and
// exit events). The tracing thread under --cpu-sched tracing-idle sends its
// own export requests through one: an export worker of its own would be
// another V8 isolate (memory), and a thread at the normal policy whose
// requests preempt HAProxy. Messages both ways are delivered on a later turn
// of the event loop, as a thread's would be, so the pool never re-enters
// itself; bodies are passed by reference, nothing is copied.

import { EventEmitter } from 'node:events'
import { createExportRunner, type ExportRunner } from './export-runner.js'
import { resourceDefaults } from './otel.js'
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'

/** What the pool needs of an export worker, whichever thread it runs in. */
export interface ExportWorker extends EventEmitter {
  postMessage(m: ToWorker, transfer?: ArrayBuffer[]): void
  terminate(): Promise<number>
}

export class InThreadWorker extends EventEmitter implements ExportWorker {
  private readonly runner: ExportRunner
  private ended = false

  constructor(init: WorkerInit) {
    super()
    this.runner = createExportRunner(init, (m) => this.emitLater('message', m))
    this.emitLater('message', { type: 'ready', resourceDefaults: resourceDefaults() } satisfies FromWorker)
  }

  postMessage(m: ToWorker): void {
    if (this.ended) return
    setImmediate(() => {
      if (this.ended) return
      // A crash of a runner in this thread would be this thread's: for the
      // pool's restart tests it ends the runner as a worker's exit would.
      if (m.type === 'crash') this.end(1)
      else this.runner.handle(m)
    })
  }

  /** Whatever the runner still has in flight finishes unobserved. */
  terminate(): Promise<number> {
    this.end(0)
    return Promise.resolve(0)
  }

  private end(code: number): void {
    if (this.ended) return
    this.ended = true
    setImmediate(() => this.emit('exit', code))
  }

  private emitLater(event: 'message', m: FromWorker): void {
    setImmediate(() => {
      if (!this.ended) this.emit(event, m)
    })
  }
}
