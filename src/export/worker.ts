// Export worker thread: receives batches of span records, turns them into
// OpenTelemetry ReadableSpans and exports them. One pipeline per worker; the
// main thread never waits on anything that happens here.

import { parentPort, workerData } from 'node:worker_threads'
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'
import { createEncodedExporter, createRecordExporter, ExportResultCode, resourceDefaults, routeDiagnostics } from './otel.js'

const port = parentPort
if (port === null) throw new Error('export worker started outside a worker thread')
const post = (m: FromWorker): void => port.postMessage(m)

const init = workerData as WorkerInit
routeDiagnostics((level, msg) => post({ type: 'log', level, msg }))
const exporter = createRecordExporter(init.config, init.scope)
const encodedExporter = init.config.exporter === 'otlp' && init.config.protocol === 'http/protobuf' ? createEncodedExporter(init.config) : null
let pending = 0
let onIdle: (() => void) | null = null

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'export': {
      const started = performance.now()
      pending++
      try {
        exporter.export(m.spans, (r) =>
          done(m.id, started, r.code === ExportResultCode.SUCCESS, r.error ? r.error.message : undefined),
        )
      } catch (err) {
        done(m.id, started, false, `export failed: ${(err as Error).message}`)
      }
      return
    }
    case 'export-encoded': {
      const started = performance.now()
      pending++
      if (encodedExporter === null) {
        done(m.id, started, false, 'encoded batch for an exporter that takes records')
        return
      }
      encodedExporter.export(m, (r) =>
        done(m.id, started, r.code === ExportResultCode.SUCCESS, r.error ? r.error.message : undefined),
      )
      return
    }
    case 'shutdown':
      void shutdown()
      return
    case 'crash':
      throw new Error('export worker crash requested')
  }
})

function done(id: number, started: number, ok: boolean, error?: string): void {
  pending--
  post(error === undefined ? { type: 'result', id, ok, ms: performance.now() - started } : { type: 'result', id, ok, error, ms: performance.now() - started })
  if (pending === 0 && onIdle) onIdle()
}

async function shutdown(): Promise<void> {
  if (pending > 0) await new Promise<void>((resolve) => (onIdle = resolve))
  try {
    await Promise.all([exporter.shutdown(), encodedExporter?.shutdown()])
  } finally {
    post({ type: 'closed' })
  }
}

post({ type: 'ready', resourceDefaults: resourceDefaults() })
