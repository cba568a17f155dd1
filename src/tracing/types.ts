// The boundary types of the tracing layer: what a finished span looks like
// when it leaves the span tree for the export queue and the worker threads.
// Plain data only (structured-clone safe): hex ids, epoch microseconds,
// attribute records. No OpenTelemetry types here; export/otel.ts maps them.

export type AttrValue = string | number | boolean
export type Attributes = Record<string, AttrValue>

export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer'

/** Same numbering in the OTel API and OTLP. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const
export type StatusCode = (typeof StatusCode)[keyof typeof StatusCode]

export interface SpanEvent {
  name: string
  timeUs: number
  attributes: Attributes
}

export interface SpanLink {
  traceId: string
  spanId: string
  attributes: Attributes
}

export interface FinishedSpan {
  /** 32 lowercase hex digits. */
  traceId: string
  /** 16 lowercase hex digits. */
  spanId: string
  /** '' for a root span without a remote parent. */
  parentSpanId: string
  /** The parent is in another process (context extracted from the request). */
  parentIsRemote: boolean
  /** W3C trace flags of this span's context (bit 0: sampled). */
  traceFlags: number
  traceState: string
  name: string
  kind: SpanKindName
  /** Epoch microseconds. */
  startUs: number
  endUs: number
  attributes: Attributes
  events: SpanEvent[]
  links: SpanLink[]
  status: { code: StatusCode; message: string }
  /** HAProxy engine-id of the request (a resource attribute on export). */
  engineId: string | null
  droppedAttributes: number
  droppedEvents: number
  droppedLinks: number
}

/** Where completed span trees go: the export queue, or a memory sink in tests. */
export interface SpanSink {
  push(spans: FinishedSpan[]): void
}
