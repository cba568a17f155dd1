// All open span trees, keyed by HAProxy engine-id + unique-id (never by SPOP
// connection: HAProxy sends the events of one request on whichever
// connection is free). Bounded: a cap on open trees and on spans per tree,
// and an idle TTL after which a tree that never finished (backend timeout,
// aborted client, a response HAProxy made itself) is reaped, its open spans
// ended at their last activity with status ERROR. Completed trees go to the
// SpanSink in one piece.
//
// Trees sit in one map per engine-id (no key string to build per message);
// the reaper scans them all once a second, which at the default cap of
// 20,000 trees costs well under a millisecond and keeps every message free
// of bookkeeping.

import type { Logger } from 'pino'
import { bump } from '../util/counters.js'
import { LogLimiter } from '../util/log-limiter.js'
import { applyHttpStatus } from './http-status.js'
import { IdGenerator } from './ids.js'
import type { Propagator, SpanContext, UpstreamSampling } from './propagation.js'
import { DEFAULT_SAMPLER, Sampler, type SamplerConfig } from './sampler.js'
import { TracingStats } from './stats.js'
import { DEFAULT_SPAN_LIMITS, type OpenSpan, type SpanLimits, Trace } from './trace.js'
import { type FinishedSpan, type SpanSink, StatusCode } from './types.js'

export interface TreeLimits {
  /** Open trees at most; beyond, new requests are not traced (counted). */
  maxTrees: number
  /** Spans per tree at most; beyond, new spans are dropped (counted). */
  maxSpansPerTree: number
  /** A tree with no event for this long is reaped. */
  idleTtlMs: number
  /** Status message of spans ended by the reaper (-o/--ot-timeout-msg). */
  timeoutMessage: string
}

export const DEFAULT_TREE_LIMITS: TreeLimits = {
  maxTrees: 20_000,
  maxSpansPerTree: 256,
  idleTtlMs: 30_000,
  timeoutMessage: 'connection timeout',
}

export interface TraceStoreOptions {
  sink: SpanSink
  limits?: Partial<TreeLimits>
  sampler?: SamplerConfig
  /** Formats of extract= and inject= (OTEL_PROPAGATORS). */
  propagators?: readonly Propagator[]
  spanLimits?: Partial<SpanLimits>
  stats?: TracingStats
  ids?: IdGenerator
  logger?: Logger
}

/** What a request's context headers said: a parent, and/or a sampling decision. */
export interface Upstream {
  context: SpanContext | null
  sampling: UpstreamSampling | null
}

/** Attribute set on spans that did not end by a finish= argument. */
export const INCOMPLETE_ATTRIBUTE = 'spoa_tracer.incomplete'

export class TraceStore {
  readonly limits: TreeLimits
  readonly spanLimits: SpanLimits
  readonly stats: TracingStats
  readonly ids: IdGenerator
  readonly sampler: Sampler
  readonly propagators: readonly Propagator[]
  /** engine-id (or '' when HAProxy sent none) -> unique-id -> tree */
  private readonly engines = new Map<string, Map<string, Trace>>()
  private count = 0
  private readonly sink: SpanSink
  private readonly logger: Logger | undefined
  private readonly limiter = new LogLimiter()

  constructor(opts: TraceStoreOptions) {
    this.sink = opts.sink
    this.limits = { ...DEFAULT_TREE_LIMITS, ...opts.limits }
    this.spanLimits = { ...DEFAULT_SPAN_LIMITS, ...opts.spanLimits }
    this.stats = opts.stats ?? new TracingStats()
    this.ids = opts.ids ?? new IdGenerator()
    this.sampler = new Sampler(opts.sampler ?? DEFAULT_SAMPLER)
    this.propagators = opts.propagators ?? ['tracecontext', 'baggage']
    this.logger = opts.logger
  }

  get size(): number {
    return this.count
  }

  /** The open tree of a request. */
  get(engineId: string | null, uniqueId: string): Trace | undefined {
    return this.engines.get(engineId ?? '')?.get(uniqueId)
  }

  /**
   * A new tree, or null when the cap on open trees is reached. `upstream`:
   * what the request's context headers said, when the creating message
   * carried them (extract=), even if they said nothing. With a remote parent
   * the tree continues its trace; the sampler decides either way.
   */
  create(uniqueId: string, engineId: string | null, nowUs: number, upstream: Upstream | null = null): Trace | null {
    if (this.count >= this.limits.maxTrees) {
      this.warnOnce('tree_cap', { maxTrees: this.limits.maxTrees }, 'open-tree cap reached: new requests are not traced')
      return null
    }
    const engine = engineId ?? ''
    let trees = this.engines.get(engine)
    if (trees === undefined) {
      trees = new Map()
      this.engines.set(engine, trees)
    }
    const remote = upstream?.context ?? null
    const traceId = remote?.traceId ?? this.ids.traceId()
    const sampled = this.sampler.shouldSample(traceId, upstream?.sampling ?? null, nowUs)
    if (!sampled) this.stats.treesSampledOut++
    const tree = new Trace(uniqueId, engineId, traceId, nowUs, sampled, upstream !== null || !this.sampler.lateContextMatters)
    if (remote !== null) tree.adopt(remote)
    trees.set(uniqueId, tree)
    this.count++
    this.stats.treesStarted++
    return tree
  }

  /**
   * The request's context headers, seen after the tree started (the 9-span
   * flow starts its root at on-client-session): a valid context joins its
   * trace unless one of the tree's contexts went out already (then it is
   * counted too_late), and the sampler decides again, as if it had come
   * first. From then on the decision is final.
   */
  join(tree: Trace, upstream: Upstream, nowUs: number): void {
    const remote = upstream.context
    if (remote !== null && tree.remote === null) {
      if (tree.injected) bump(this.stats.contextsInvalid, 'too_late')
      else tree.adopt(remote)
    }
    if (tree.decided) return
    const was = tree.sampled
    tree.sampled = this.sampler.shouldSample(tree.traceId, upstream.sampling, nowUs, was)
    if (tree.sampled !== was) this.stats.treesSampledOut += tree.sampled ? -1 : 1
    this.settle(tree)
  }

  /** Makes the tree's sampling decision final (a context of it goes out, or its headers were seen). */
  settle(tree: Trace): void {
    tree.decided = true
    const recording = tree.sampled
    for (const span of tree.open.values()) span.recording = recording
  }

  private *allTrees(): Generator<Trace> {
    for (const trees of this.engines.values()) yield* trees.values()
  }

  /** A new span in `tree`, or null when the per-tree cap is reached. */
  startSpan(tree: Trace, name: string, parent: OpenSpan | null, followsFrom: boolean, nowUs: number): OpenSpan | null {
    if (tree.spanCount >= this.limits.maxSpansPerTree) {
      bump(this.stats.spansDropped, 'span_cap')
      this.warnOnce('span_cap', { maxSpansPerTree: this.limits.maxSpansPerTree }, 'spans-per-tree cap reached: span dropped')
      return null
    }
    this.stats.spansStarted++
    this.stats.openSpans++
    return tree.startSpan(name, parent, followsFrom, this.ids, this.spanLimits, nowUs, this.stats.limits)
  }

  endSpan(tree: Trace, span: OpenSpan, nowUs: number): void {
    if (span.recording) applyHttpStatus(span.rec, (k, v) => span.setAttribute(k, v, this.spanLimits))
    tree.endSpan(span, nowUs)
    this.stats.spansFinished++
    this.stats.openSpans--
  }

  /** A tree built whole elsewhere (the compact profile): counted and handed to the sink. */
  pushComplete(spans: FinishedSpan[]): void {
    this.stats.treesStarted++
    this.stats.treesCompleted++
    this.stats.spansStarted += spans.length
    this.stats.spansFinished += spans.length
    this.sink.push(spans)
  }

  /** Ends every open span at `nowUs` and hands the whole tree to the sink. */
  complete(tree: Trace, nowUs: number): void {
    for (const span of [...tree.open.values()]) this.endSpan(tree, span, nowUs)
    this.stats.treesCompleted++
    this.release(tree)
  }

  private release(tree: Trace): void {
    const engine = tree.engineId ?? ''
    const trees = this.engines.get(engine)
    if (trees?.delete(tree.uniqueId)) {
      this.count--
      if (trees.size === 0) this.engines.delete(engine)
    }
    if (!tree.sampled || tree.ended.length === 0) return
    // One trace, one sampled flag: whatever the flags of a span were when it
    // started (the decision may have changed since), it leaves with the tree's.
    for (const rec of tree.ended) rec.traceFlags = 1
    this.sink.push(tree.ended)
  }

  /**
   * Reaps trees idle for longer than the TTL. Their open spans end at their
   * own last activity, with status ERROR. Returns the number reaped.
   */
  reap(nowUs: number): number {
    this.reportLimits()
    const cutoff = nowUs - this.limits.idleTtlMs * 1000
    const idle: Trace[] = []
    for (const tree of this.allTrees()) if (tree.lastUs <= cutoff) idle.push(tree)
    for (const tree of idle) {
      this.endIncomplete(tree, 'reaped', this.limits.timeoutMessage, null)
      this.stats.treesReaped++
    }
    return idle.length
  }

  /** Shutdown: every open tree ends now, marked incomplete, and goes to the sink. */
  endAll(nowUs: number, message = 'agent shutdown'): number {
    const n = this.count
    for (const tree of [...this.allTrees()]) {
      this.endIncomplete(tree, 'shutdown', message, nowUs)
      this.stats.treesEndedAtShutdown++
    }
    return n
  }

  private endIncomplete(tree: Trace, reason: string, message: string, atUs: number | null): void {
    for (const span of [...tree.open.values()]) {
      span.setAttribute(INCOMPLETE_ATTRIBUTE, reason, this.spanLimits)
      span.rec.status.code = StatusCode.ERROR
      span.rec.status.message = message
      this.endSpan(tree, span, atUs ?? span.lastUs)
    }
    this.release(tree)
  }

  private lastLimits = { attributesDropped: 0, valuesTruncated: 0, eventsDropped: 0, linksDropped: 0 }

  /** Span limits are hit on the hot path; they are reported here, once a second at most, rate-limited. */
  private reportLimits(): void {
    const now = this.stats.limits
    const prev = this.lastLimits
    const delta = {
      attributesDropped: now.attributesDropped - prev.attributesDropped,
      valuesTruncated: now.valuesTruncated - prev.valuesTruncated,
      eventsDropped: now.eventsDropped - prev.eventsDropped,
      linksDropped: now.linksDropped - prev.linksDropped,
    }
    if (delta.attributesDropped + delta.valuesTruncated + delta.eventsDropped + delta.linksDropped === 0) return
    this.lastLimits = { ...now }
    this.warnOnce('span_limits', { ...delta, limits: this.spanLimits }, 'span limits hit: attributes, events or links dropped, or values truncated')
  }

  /** Rate-limited log line for an operator-visible condition. */
  warnOnce(key: string, obj: object, msg: string): void {
    if (!this.logger) return
    const suppressed = this.limiter.allow(key)
    if (suppressed < 0) return
    this.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }

  debug(obj: object, msg: string): void {
    this.logger?.debug(obj, msg)
  }
}
