// The console exporter: each trace as a readable tree (the shape of
// `npm run demo`), written by the export worker straight to the process's
// stdout with one write per trace, so a trace is never cut by another
// trace's lines. Logs do not go to stdout while this exporter is on (the CLI
// sends them to stderr unless --logfile is given), so no log line lands
// inside a tree either, and `spoa-tracer --exporter console > traces.txt`
// keeps only the traces.
//
//   trace 4bf92f3577b34da6a3ce929d0e0e4736  2026-11-23T10:15:02.113Z  9 spans  12.417 ms  service haproxy
//   HAProxy session  SERVER  +0.000 ms  12.417 ms  ERROR  {http.request.method=GET, url.path=/x, ...}
//     Client session  SERVER  +0.010 ms  12.390 ms
//       Frontend HTTP request  INTERNAL  +0.120 ms  0.050 ms  (follows from Frontend TCP request)

import { writeSync } from 'node:fs'
import { ExportResultCode } from '@opentelemetry/core'
import type { AttrValue, Attributes, FinishedSpan } from '../tracing/types.js'
import { StatusCode } from '../tracing/types.js'
import type { RecordExporter } from './otel.js'

/** Longer attribute values are cut, with their length: the console is for reading. */
const MAX_VALUE = 120

const ms = (us: number): string => `${(us / 1000).toFixed(3)} ms`

function value(v: AttrValue): string {
  if (typeof v !== 'string') return String(v)
  const s = v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE)}... (${v.length} chars)` : v
  // Bare when it cannot be mistaken for another type (a number, a boolean) or run into the next one.
  return /^[\w./:@+-]+$/.test(s) && !/^(-?[\d.]+|true|false)$/.test(s) ? s : JSON.stringify(s)
}

function attributes(a: Attributes): string {
  const parts = Object.entries(a).map(([k, v]) => `${k}=${value(v)}`)
  return parts.length === 0 ? '' : `  {${parts.join(', ')}}`
}

/** One trace (its spans, in any order) as lines of text, ending with a newline. */
export function renderTrace(spans: readonly FinishedSpan[], service: string): string {
  const ids = new Set(spans.map((s) => s.spanId))
  const names = new Map(spans.map((s) => [s.spanId, s.name]))
  const children = new Map<string, FinishedSpan[]>()
  for (const s of spans) {
    // A span whose parent is elsewhere (a remote parent, or not in this trace's spans) is a top line.
    const p = ids.has(s.parentSpanId) ? s.parentSpanId : ''
    const list = children.get(p)
    if (list) list.push(s)
    else children.set(p, [s])
  }
  const t0 = Math.min(...spans.map((s) => s.startUs))
  const t1 = Math.max(...spans.map((s) => s.endUs))
  const first = spans[0]!
  const lines = [
    `trace ${first.traceId}  ${new Date(t0 / 1000).toISOString()}  ${spans.length} span${spans.length === 1 ? '' : 's'}  ${ms(t1 - t0)}  service ${service}`,
  ]
  const walk = (parent: string, depth: number): void => {
    const list = (children.get(parent) ?? []).sort((a, b) => a.startUs - b.startUs)
    for (const s of list) {
      const pad = '  '.repeat(depth + 1)
      let line = `${pad}${s.name}  ${s.kind.toUpperCase()}  +${ms(s.startUs - t0)}  ${ms(s.endUs - s.startUs)}`
      if (s.status.code === StatusCode.ERROR) line += s.status.message ? `  ERROR: ${s.status.message}` : '  ERROR'
      if (parent === '' && s.parentSpanId !== '') line += `  (parent ${s.parentSpanId}${s.parentIsRemote ? ', remote' : ''})`
      for (const l of s.links) line += `  (follows from ${names.get(l.spanId) ?? l.spanId})`
      lines.push(line + attributes(s.attributes))
      for (const e of s.events) lines.push(`${pad}  * ${e.name}  +${ms(e.timeUs - t0)}${attributes(e.attributes)}`)
      walk(s.spanId, depth + 1)
    }
  }
  walk('', 0)
  return `${lines.join('\n')}\n`
}

/** Spans grouped by trace, in order of first appearance. */
export function byTrace(spans: readonly FinishedSpan[]): FinishedSpan[][] {
  const traces = new Map<string, FinishedSpan[]>()
  for (const s of spans) {
    const list = traces.get(s.traceId)
    if (list) list.push(s)
    else traces.set(s.traceId, [s])
  }
  return [...traces.values()]
}

const pause = new Int32Array(new SharedArrayBuffer(4))

/**
 * Writes all of `text` to `fd`, synchronously (this runs in an export
 * worker, never on the thread that answers HAProxy). A pipe may be
 * non-blocking: a full one is waited on, up to `maxWaitMs` in all.
 */
export function writeAll(fd: number, text: string, maxWaitMs = 10_000): void {
  const buf = Buffer.from(text)
  let off = 0
  let waited = 0
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waited >= maxWaitMs) throw err
      Atomics.wait(pause, 0, 0, 5)
      waited += 5
    }
  }
}

/** The console exporter: `write` writes one whole trace (to stdout by default). */
export function createConsoleTreeExporter(
  resource: Record<string, string>,
  write: (text: string) => void = (text) => writeAll(1, text),
): RecordExporter {
  const service = resource['service.name'] ?? 'unknown_service'
  return {
    export(records, done) {
      try {
        for (const trace of byTrace(records)) write(renderTrace(trace, service))
        done({ code: ExportResultCode.SUCCESS })
      } catch (error) {
        done({ code: ExportResultCode.FAILED, error: error as Error })
      }
    },
    shutdown: async () => {},
  }
}
