// What an export worker does, whatever thread runs it: takes batches (span
// records, or OTLP request bodies encoded by the tracing core) and exports
// them, one attempt each, reporting every attempt's outcome at once through
// `post`: retries are the span queue's decision. An export worker thread
// (worker.ts) runs one; so does the tracing thread under --cpu-sched
// tracing-idle, which sends its own requests (pool.ts, `inThread`).

import type { FromWorker, ToWorker, WorkerInit } from './protocol.js'
import { createOtlpEncoder, createRecordExporter, ExportResultCode, routeDiagnostics } from './otel.js'
import { OtlpHttpTransport } from './otlp-http.js'

export interface ExportRunner {
  /** One message from the pool; 'crash' is the caller's to act on. */
  handle(m: Exclude<ToWorker, { type: 'crash' }>): void
}

/**
 * `post(m, transfer)`: a message to the pool; `transfer` names a body's
 * buffer that a thread boundary should move rather than copy.
 */
export function createExportRunner(init: WorkerInit, post: (m: FromWorker, transfer?: ArrayBuffer) => void): ExportRunner {
  const config = init.config
  routeDiagnostics((level, msg) => post({ type: 'log', level, msg }))
  const otlp =
    config.exporter === 'otlp'
      ? {
          encode: createOtlpEncoder(config, init.scope),
          transport: new OtlpHttpTransport({
            url: config.endpoint,
            contentType: config.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
            headers: config.headers,
            compression: config.compression,
            timeoutMs: config.timeoutMs,
            maxConcurrent: config.maxConcurrentExports,
            userAgent: `${init.scope.name}/${init.scope.version}`,
          }),
        }
      : null
  const local = otlp === null ? createRecordExporter(config, init.scope) : null
  let pending = 0
  let onIdle: (() => void) | null = null

  /** `theirs`: the body came from the pool, whose memory it is: it goes back whatever happens. */
  const send = (id: number, started: number, body: Uint8Array, theirs: boolean): void => {
    otlp!.transport.send(body).then(
      (r) => done(id, started, { ok: r.ok, error: r.error, warning: r.warning, retryAfterMs: r.retryAfterMs }, r.retryable || theirs ? body : undefined, r.retryable, theirs),
      (err: unknown) => done(id, started, { ok: false, error: (err as Error).message }, theirs ? body : undefined, false, theirs),
    )
  }

  const done = (
    id: number,
    started: number,
    r: { ok: boolean; error?: string | undefined; warning?: string | undefined; retryAfterMs?: number | undefined },
    body?: Uint8Array,
    retryable = false,
    theirs = false,
  ): void => {
    pending--
    const m: FromWorker = { type: 'result', id, ok: r.ok, ms: performance.now() - started }
    if (r.error !== undefined && !r.ok) m.error = r.error
    if (r.warning !== undefined) m.warning = r.warning
    if (body !== undefined) {
      // Moved, not copied, across a thread boundary: a body from the pool
      // owns its whole buffer (a view of its start, for a recycled one); one
      // encoded here may be a view into Node's shared slab and is copied first.
      const own = theirs || (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) ? body : new Uint8Array(body)
      m.body = own
      m.retryable = retryable
      if (r.retryAfterMs !== undefined) m.retryAfterMs = r.retryAfterMs
      post(m, own.buffer as ArrayBuffer)
    } else post(m)
    if (pending === 0 && onIdle) onIdle()
  }

  const shutdown = async (): Promise<void> => {
    if (pending > 0) await new Promise<void>((resolve) => (onIdle = resolve))
    try {
      otlp?.transport.shutdown()
      await local?.shutdown()
    } finally {
      post({ type: 'closed' })
    }
  }

  return {
    handle(m) {
      switch (m.type) {
        case 'export': {
          const started = performance.now()
          pending++
          if (otlp !== null) {
            let body: Uint8Array
            try {
              body = otlp.encode(m.spans)
            } catch (err) {
              done(m.id, started, { ok: false, error: `cannot encode the request: ${(err as Error).message}` })
              return
            }
            send(m.id, started, body, false)
            return
          }
          try {
            local!.export(m.spans, (r) => done(m.id, started, { ok: r.code === ExportResultCode.SUCCESS, error: r.error?.message }))
          } catch (err) {
            done(m.id, started, { ok: false, error: `export failed: ${(err as Error).message}` })
          }
          return
        }
        case 'export-encoded': {
          const started = performance.now()
          pending++
          if (otlp === null) done(m.id, started, { ok: false, error: 'encoded batch for an exporter that takes records' })
          else send(m.id, started, m.body, true)
          return
        }
        case 'shutdown':
          void shutdown()
          return
      }
    },
  }
}
