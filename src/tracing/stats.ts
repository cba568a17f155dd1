import type { LimitHits } from './trace.js'

// Counters of the tracing layer. Label values are fixed reason strings.

export class TracingStats {
  messages = 0
  /** Messages that created nothing, by reason (missing_id, null_id, tree_cap, sampled_out...). */
  readonly messagesRejected = new Map<string, number>()
  /** Arguments that were ignored, by reason (unknown_argument, no_current_span, reference_not_found...). */
  readonly argumentErrors = new Map<string, number>()
  treesStarted = 0
  treesCompleted = 0
  treesReaped = 0
  treesEndedAtShutdown = 0
  spansStarted = 0
  spansFinished = 0
  /** Spans dropped before export, by reason (span_cap, ...). */
  readonly spansDropped = new Map<string, number>()
  openSpans = 0
  /** Trees the sampler left out (nothing of them is exported). */
  treesSampledOut = 0
  /** Remote contexts joined, by propagator (tracecontext, b3, ...). */
  readonly contextsExtracted = new Map<string, number>()
  /** Context headers that were present but unusable, by propagator:reason (never fatal: a new trace starts). */
  readonly contextsInvalid = new Map<string, number>()
  /** inject= arguments answered with set-var actions. */
  contextsInjected = 0
  /** Span limits hit (attribute count and value length, events, links). */
  readonly limits: LimitHits = { attributesDropped: 0, valuesTruncated: 0, eventsDropped: 0, linksDropped: 0 }
}
