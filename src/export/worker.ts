// Export worker thread: receives batches of span records, turns them into
// OpenTelemetry ReadableSpans and exports them. One pipeline per worker; the
// main thread never waits on anything that happens here.

import { parentPort, workerData } from 'node:worker_threads'
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'
import { createEncodedExporter, createRecordExporter, ExportResultCode, resourceDefaults, routeDiagnostics } from './otel.js'

if (parentPort === null) throw new Error('export worker started outside a worker thread')
const port = parentPort
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
      encodedExporter.export(m, (r) => {
        const ok = r.code === ExportResultCode.SUCCESS
        const retry = !ok && retryable(r.error) ? m.body : undefined
        done(m.id, started, ok, r.error ? r.error.message : undefined, retry)
      })
      return
    }
    case 'shutdown':
      void shutdown()
      return
    case 'crash':
      throw new Error('export worker crash requested')
  }
})

function done(id: number, started: number, ok: boolean, error?: string, retry?: Uint8Array): void {
  pending--
  const m: FromWorker = { type: 'result', id, ok, ms: performance.now() - started }
  if (error !== undefined) m.error = error
  if (retry !== undefined) {
    m.retry = retry
    port.postMessage(m, [retry.buffer as ArrayBuffer])
  } else post(m)
  if (pending === 0 && onIdle) onIdle()
}

/**
 * Worth sending again later: anything but an HTTP status the OTLP spec says
 * not to retry (4xx other than 429, 500, 501). Network errors and timeouts,
 * and the 429/502/503/504 the transport already retried, are.
 */
function retryable(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code !== 'number') return true
  return code === 429 || code === 502 || code === 503 || code === 504
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
