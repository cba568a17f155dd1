// Export worker thread: an export runner (export-runner.ts) behind the
// thread's message port. Batches come from the pool (pool.ts); every
// attempt's outcome goes back at once; the thread that builds the trees
// never waits on anything that happens here.

import { parentPort, workerData } from 'node:worker_threads'
import { createExportRunner } from './export-runner.js'
import { resourceDefaults } from './otel.js'
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'

if (parentPort === null) throw new Error('export worker started outside a worker thread')
const port = parentPort
const post = (m: FromWorker, transfer?: ArrayBuffer): void => (transfer === undefined ? port.postMessage(m) : port.postMessage(m, [transfer]))
const runner = createExportRunner(workerData as WorkerInit, post)

port.on('message', (m: ToWorker) => {
  if (m.type === 'crash') throw new Error('export worker crash requested')
  runner.handle(m)
})

post({ type: 'ready', resourceDefaults: resourceDefaults() })
