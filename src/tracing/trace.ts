// One request's span tree while it is open: its spans by name, the parent
// and follows-from links between them, baggage inheritance, and the limits
// on what one span may hold. Span records are plain objects from the start
// and leave as they are (see types.ts).

import type { IdGenerator } from './ids.js'
import type { SpanContext } from './propagation.js'
import { isTruthy } from './values.js'
import { type AttrValue, type FinishedSpan, type SpanKindName, StatusCode } from './types.js'

export interface SpanLimits {
  maxAttributes: number
  maxEvents: number
  maxLinks: number
  /** 0 = unlimited. Longer string values are truncated. */
  maxAttributeLength: number
}

/**
 * The OpenTelemetry defaults (128 attributes, events, links), except the
 * value length: OpenTelemetry leaves it unlimited, and a span must not be
 * able to hold megabytes because a header was long.
 */
export const DEFAULT_SPAN_LIMITS: SpanLimits = {
  maxAttributes: 128,
  maxEvents: 128,
  maxLinks: 128,
  maxAttributeLength: 4096,
}

/** How often each span limit was hit, all spans together (for metrics and the log). */
export interface LimitHits {
  attributesDropped: number
  valuesTruncated: number
  eventsDropped: number
  linksDropped: number
}

export class OpenSpan {
  readonly rec: FinishedSpan
  /** Baggage visible from this span on: its parent's at creation, plus its own. */
  baggage: Map<string, string> | null
  private baggageShared: boolean
  private attrCount = 0
  /** Set by a span.kind tag: later heuristics must not override it. */
  kindFixed = false
  lastUs: number
  /** False in a sampled-out trace: the span exists for names and context, records nothing. */
  recording: boolean

  private readonly hits: LimitHits

  constructor(rec: FinishedSpan, baggage: Map<string, string> | null, nowUs: number, recording: boolean, hits: LimitHits) {
    this.rec = rec
    this.recording = recording
    this.hits = hits
    this.baggage = baggage
    this.baggageShared = baggage !== null
    this.lastUs = nowUs
  }

  setAttribute(key: string, value: AttrValue, limits: SpanLimits): void {
    if (!this.recording) return
    const attrs = this.rec.attributes
    if (typeof value === 'string' && limits.maxAttributeLength > 0 && value.length > limits.maxAttributeLength) {
      value = value.slice(0, limits.maxAttributeLength)
      this.hits.valuesTruncated++
    }
    if (!(key in attrs)) {
      if (this.attrCount >= limits.maxAttributes) {
        this.rec.droppedAttributes++
        this.hits.attributesDropped++
        return
      }
      this.attrCount++
    }
    attrs[key] = value
  }

  /** A tag: attributes, except the OpenTracing keys that OTel models otherwise. */
  setTag(key: string, value: AttrValue, limits: SpanLimits): void {
    if (key === 'span.kind') {
      const kind = String(value).toLowerCase()
      if (kind === 'client' || kind === 'server' || kind === 'producer' || kind === 'consumer' || kind === 'internal') {
        this.rec.kind = kind
        this.kindFixed = true
        return
      }
    } else if (key === 'error') {
      // OpenTracing compatibility: the error tag becomes the span status.
      if (isTruthy(value)) this.rec.status.code = StatusCode.ERROR
      return
    }
    this.setAttribute(key, value, limits)
  }

  setBaggage(key: string, value: string, limits: SpanLimits): void {
    if (this.baggageShared || this.baggage === null) {
      this.baggage = new Map(this.baggage ?? undefined)
      this.baggageShared = false
    }
    this.baggage.set(key, value)
    this.setAttribute(`baggage.${key}`, value, limits)
  }

  addEvent(name: string, message: string, nowUs: number, limits: SpanLimits): void {
    if (!this.recording) return
    if (this.rec.events.length >= limits.maxEvents) {
      this.rec.droppedEvents++
      this.hits.eventsDropped++
      return
    }
    this.rec.events.push({ name, timeUs: nowUs, attributes: { message } })
  }
}

/** Span kind from the span's place in the tree and its name, when no span.kind tag says otherwise. */
export function guessKind(name: string, isRoot: boolean): SpanKindName {
  if (isRoot) return 'server'
  if (/\b(server|backend)\b/i.test(name)) return 'client'
  if (/\bsession\b/i.test(name)) return 'server'
  return 'internal'
}

export class Trace {
  readonly uniqueId: string
  readonly engineId: string | null
  /** Ours, or the remote one once a context is joined (see adopt()). */
  traceId: string
  /**
   * The sampler's decision; a sampled-out tree exports nothing, and every
   * span a sampled tree exports carries it (TraceStore stamps the flags).
   */
  sampled: boolean
  /**
   * The decision can no longer change: the request's context headers were
   * seen (extract=), a context went out (inject=), or the sampler does not
   * care about them. Until then spans record even if `sampled` is false, so
   * that a late "sampled" upstream gets whole spans.
   */
  decided: boolean
  /** The upstream span this request continues, when the request carried one. */
  remote: SpanContext | null = null
  traceState = ''
  /** A context of this tree went out in an ACK: its trace id can no longer change. */
  injected = false
  /** Open spans by name. A finished span leaves this map: references only find open spans. */
  readonly open = new Map<string, OpenSpan>()
  root: OpenSpan | null = null
  /** Finished spans, waiting for the tree to complete. */
  readonly ended: FinishedSpan[] = []
  lastUs: number
  spanCount = 0
  /** Baggage that came with the request, inherited by the root. */
  baggage: Map<string, string> | null = null

  constructor(uniqueId: string, engineId: string | null, traceId: string, nowUs: number, sampled: boolean, decided: boolean) {
    this.uniqueId = uniqueId
    this.engineId = engineId
    this.traceId = traceId
    this.lastUs = nowUs
    this.sampled = sampled
    this.decided = decided
  }

  /** Whether spans of this tree record attributes and events. */
  get recording(): boolean {
    return this.sampled || !this.decided
  }

  /**
   * Joins the trace of a remote parent: every span so far moves to its trace
   * id, and the root becomes the remote span's child. The sampled flag stays
   * the tree's own decision (TraceStore decides again when it may change).
   */
  adopt(remote: SpanContext): void {
    this.remote = remote
    this.traceId = remote.traceId
    this.traceState = remote.traceState
    const move = (rec: FinishedSpan): void => {
      rec.traceId = remote.traceId
      rec.traceState = remote.traceState
      for (const l of rec.links) l.traceId = remote.traceId
    }
    for (const span of this.open.values()) move(span.rec)
    for (const rec of this.ended) move(rec)
    if (this.root !== null) {
      this.root.rec.parentSpanId = remote.spanId
      this.root.rec.parentIsRemote = true
    }
  }

  startSpan(
    name: string,
    parent: OpenSpan | null,
    followsFrom: boolean,
    ids: IdGenerator,
    limits: SpanLimits,
    nowUs: number,
    hits: LimitHits,
  ): OpenSpan {
    const isRoot = parent === null
    const remote = isRoot ? this.remote : null
    const rec: FinishedSpan = {
      traceId: this.traceId,
      spanId: ids.spanId(),
      parentSpanId: parent ? parent.rec.spanId : (remote?.spanId ?? ''),
      parentIsRemote: remote !== null,
      traceFlags: this.sampled ? 1 : 0,
      traceState: this.traceState,
      name,
      kind: guessKind(name, isRoot),
      startUs: nowUs,
      endUs: nowUs,
      attributes: {},
      events: [],
      links: [],
      status: { code: StatusCode.UNSET, message: '' },
      engineId: this.engineId,
      droppedAttributes: 0,
      droppedEvents: 0,
      droppedLinks: 0,
    }
    const span = new OpenSpan(rec, parent ? parent.baggage : this.baggage, nowUs, this.recording, hits)
    if (followsFrom && parent && limits.maxLinks === 0) {
      rec.droppedLinks++
      hits.linksDropped++
    } else if (followsFrom && parent) {
      // OTel has no follows-from: the OpenTracing shim rules make the referenced span the
      // parent and also record the reference as a link with its type.
      rec.links.push({
        traceId: this.traceId,
        spanId: parent.rec.spanId,
        attributes: { 'opentracing.ref_type': 'follows_from' },
      })
    }
    if (isRoot) {
      this.root = span
      span.setAttribute('haproxy.unique_id', this.uniqueId, limits)
    }
    if (span.baggage !== null) {
      for (const [k, v] of span.baggage) span.setAttribute(`baggage.${k}`, v, limits)
    }
    this.open.set(name, span)
    this.spanCount++
    return span
  }

  /** Ends one open span at `endUs`. */
  endSpan(span: OpenSpan, endUs: number): void {
    span.rec.endUs = Math.max(endUs, span.rec.startUs)
    this.open.delete(span.rec.name)
    this.ended.push(span.rec)
  }
}
