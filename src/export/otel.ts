// Everything that touches the OpenTelemetry JS SDK lives here, so the move
// from the 2.x line (Node 20) to 3.x (Node >= 22.15) is a version bump and
// this one file. It builds ReadableSpan objects straight from our span
// records (cheaper than going through a Tracer: no sampler, no context, no
// per-span processor hooks, which all happened already in the agent) for
// OpenTelemetry's OTLP/JSON serializer, which the file exporter and OTLP
// http/json use. OTLP http/protobuf bodies are our own (otlp-protobuf.ts);
// both protocols are sent by our transport (otlp-http.ts). The SDK's trace
// package is imported for its types only: nothing of it runs in the agent.

import { openSync, writeSync, closeSync } from 'node:fs'
import { type Attributes, type DiagLogger, diag, DiagLogLevel, type HrTime, type Link, SpanKind, type SpanContext } from '@opentelemetry/api'
import { type ExportResult, ExportResultCode, TraceState } from '@opentelemetry/core'
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer'
import { defaultResource, type Resource, resourceFromAttributes } from '@opentelemetry/resources'
import type { ReadableSpan, SpanExporter, TimedEvent } from '@opentelemetry/sdk-trace-base'
import type { FinishedSpan, SpanKindName } from '../tracing/types.js'
import type { ExportConfig } from './config.js'
import { createConsoleTreeExporter } from './console-tree.js'
import { OtlpProtobufEncoder } from './otlp-protobuf.js'

export { ExportResultCode, type ExportResult }

const KINDS: Record<SpanKindName, SpanKind> = {
  internal: SpanKind.INTERNAL,
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
}

const hrTime = (us: number): HrTime => {
  const s = Math.floor(us / 1e6)
  return [s, Math.round((us - s * 1e6) * 1000)]
}

/** A ReadableSpan over one of our records; the fields the OTLP serializers read, nothing more. */
class RecordSpan implements ReadableSpan {
  readonly name: string
  readonly kind: SpanKind
  readonly parentSpanContext: SpanContext | undefined
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly duration: HrTime
  readonly status: { code: number; message?: string }
  readonly attributes: Attributes
  readonly links: Link[]
  readonly events: TimedEvent[]
  readonly ended = true
  readonly resource: Resource
  readonly instrumentationScope: { name: string; version?: string }
  readonly droppedAttributesCount: number
  readonly droppedEventsCount: number
  readonly droppedLinksCount: number
  private readonly ctx: SpanContext

  constructor(r: FinishedSpan, resource: Resource, scope: { name: string; version?: string }) {
    this.name = r.name
    this.kind = KINDS[r.kind]
    this.ctx = { traceId: r.traceId, spanId: r.spanId, traceFlags: r.traceFlags, isRemote: false }
    if (r.traceState !== '') this.ctx.traceState = new TraceState(r.traceState)
    this.parentSpanContext =
      r.parentSpanId === ''
        ? undefined
        : { traceId: r.traceId, spanId: r.parentSpanId, traceFlags: r.traceFlags, isRemote: r.parentIsRemote }
    this.startTime = hrTime(r.startUs)
    this.endTime = hrTime(r.endUs)
    this.duration = hrTime(r.endUs - r.startUs)
    this.status = r.status.message === '' ? { code: r.status.code } : { code: r.status.code, message: r.status.message }
    this.attributes = r.attributes
    this.links = r.links.map((l) => ({
      context: { traceId: l.traceId, spanId: l.spanId, traceFlags: r.traceFlags },
      attributes: l.attributes,
    }))
    this.events = r.events.map((e) => ({ name: e.name, time: hrTime(e.timeUs), attributes: e.attributes }))
    this.resource = resource
    this.instrumentationScope = scope
    this.droppedAttributesCount = r.droppedAttributes
    this.droppedEventsCount = r.droppedEvents
    this.droppedLinksCount = r.droppedLinks
  }

  spanContext(): SpanContext {
    return this.ctx
  }
}

/**
 * Turns span records into ReadableSpans. Resources are cached per HAProxy
 * engine-id: the OTLP serializers group spans by Resource object identity,
 * so one object per engine gives one ResourceSpans entry per engine.
 */
export class SpanConverter {
  private readonly attributes: Record<string, string>
  private readonly base: Resource
  private readonly byEngine = new Map<string, Resource>()
  private readonly scope: { name: string; version: string }

  constructor(resource: Record<string, string>, scope: { name: string; version: string }) {
    this.attributes = resource
    this.base = defaultResource().merge(resourceFromAttributes(resource))
    this.scope = scope
  }

  private resourceFor(engineId: string | null): Resource {
    if (engineId === null) return this.base
    let r = this.byEngine.get(engineId)
    if (r === undefined) {
      // Bounded in practice (threads x SPOE engines x HAProxy processes); cap it anyway.
      if (this.byEngine.size >= 1024) this.byEngine.clear()
      r = defaultResource().merge(resourceFromAttributes({ ...this.attributes, 'haproxy.engine_id': engineId }))
      this.byEngine.set(engineId, r)
    }
    return r
  }

  convert(records: readonly FinishedSpan[]): ReadableSpan[] {
    const out = new Array<ReadableSpan>(records.length)
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!
      out[i] = new RecordSpan(r, this.resourceFor(r.engineId), this.scope)
    }
    return out
  }
}

/**
 * Appends OTLP/JSON to a file, one ExportTraceServiceRequest per line (the
 * layout of the OpenTelemetry Collector's file exporter). Needs no collector:
 * the embedded default of the demo.
 */
export class FileSpanExporter implements SpanExporter {
  private fd: number | null

  constructor(path: string) {
    this.fd = openSync(path, 'a')
  }

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    if (this.fd === null) {
      done({ code: ExportResultCode.FAILED, error: new Error('file exporter is shut down') })
      return
    }
    try {
      const body = JsonTraceSerializer.serializeRequest(spans)
      if (!body) throw new Error('serialization failed')
      // One write per batch with O_APPEND: lines from several workers never interleave.
      writeSync(this.fd, Buffer.concat([body, Buffer.from('\n')]))
      done({ code: ExportResultCode.SUCCESS })
    } catch (error) {
      done({ code: ExportResultCode.FAILED, error: error as Error })
    }
  }

  async shutdown(): Promise<void> {
    if (this.fd !== null) closeSync(this.fd)
    this.fd = null
  }

  async forceFlush(): Promise<void> {}
}

/** What an export worker drives for console and file: span records in, a result out. */
export interface RecordExporter {
  export(records: FinishedSpan[], done: (r: ExportResult) => void): void
  shutdown(): Promise<void>
}

/**
 * What an export worker drives for the local exporters: the console prints
 * one tree per trace (console-tree.ts), the file exporter writes OTLP/JSON
 * lines. OTLP goes out through otlp-http.ts with createOtlpEncoder's bodies.
 */
export function createRecordExporter(c: ExportConfig, scope: { name: string; version: string }): RecordExporter {
  if (c.exporter === 'console') return createConsoleTreeExporter(c.resource)
  if (c.exporter !== 'file') throw new Error(`the ${c.exporter} exporter has no local exporter`)
  const exporter = new FileSpanExporter(c.file)
  const converter = new SpanConverter(c.resource, scope)
  return {
    export: (records, done) => exporter.export(converter.convert(records), done),
    shutdown: () => exporter.shutdown(),
  }
}

/**
 * The OTLP request body for span records, in the configured protocol:
 * http/protobuf encodes our records directly (otlp-protobuf.ts), http/json
 * uses OpenTelemetry's serializer on ReadableSpans.
 */
export function createOtlpEncoder(c: ExportConfig, scope: { name: string; version: string }): (records: FinishedSpan[]) => Uint8Array {
  if (c.protocol === 'http/protobuf') {
    const encoder = new OtlpProtobufEncoder({ resource: c.resource, defaults: resourceDefaults(), scope })
    return (records) => encoder.encode(records)
  }
  const converter = new SpanConverter(c.resource, scope)
  return (records) => {
    const body = JsonTraceSerializer.serializeRequest(converter.convert(records))
    if (!body) throw new Error('OTLP/JSON serialization failed')
    return body
  }
}

/** The SDK's default resource attributes (telemetry.sdk.*), as strings. */
export function resourceDefaults(): Record<string, string> {
  return Object.fromEntries(Object.entries(defaultResource().attributes).map(([k, v]) => [k, String(v)]))
}

/** Routes the SDK's internal diagnostics (the OTLP/JSON serializer's) to our logger, warnings and up. */
export function routeDiagnostics(log: (level: 'warn' | 'error', msg: string) => void): void {
  const fmt = (msg: string, args: unknown[]): string =>
    [msg, ...args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a)))].join(' ')
  const logger: DiagLogger = {
    error: (msg, ...args) => log('error', fmt(msg, args)),
    warn: (msg, ...args) => log('warn', fmt(msg, args)),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })
}
