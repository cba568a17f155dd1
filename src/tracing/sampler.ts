// Agent-side sampling: the OTEL_TRACES_SAMPLER samplers plus a rate limit in
// traces per second. A trace sampled out records no span once its decision
// is final (see TraceStore): it costs a map entry and the lookups of its
// messages. Cheaper still is to let HAProxy decide and send nothing
// (haproxy/README.md, "Sampling").

import type { UpstreamSampling } from './propagation.js'

export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const
export type SamplerName = (typeof SAMPLERS)[number]

export interface SamplerConfig {
  name: SamplerName
  /** For the traceidratio samplers: 0..1. */
  ratio: number
  /** New sampled traces per second at most (0 = no limit). */
  rateLimit: number
}

export const DEFAULT_SAMPLER: SamplerConfig = { name: 'parentbased_always_on', ratio: 1, rateLimit: 0 }

export class Sampler {
  private readonly c: SamplerConfig
  /** Token bucket for the rate limit: at most `rateLimit` tokens, refilled continuously. */
  private tokens: number
  private lastUs = 0

  constructor(c: SamplerConfig) {
    this.c = c
    this.tokens = c.rateLimit
  }

  get parentBased(): boolean {
    return this.c.name.startsWith('parentbased_')
  }

  /**
   * Whether a context that arrives after a trace started can change its
   * decision: the upstream's flag for parent-based samplers, the new trace
   * id for the ratio. always_on and always_off decide once and for all.
   */
  get lateContextMatters(): boolean {
    return this.parentBased || this.c.name === 'traceidratio'
  }

  /**
   * The decision for a trace, from its id and what the request said about
   * sampling (a parent's flag or a B3 decision alone), if anything.
   * Parent-based samplers follow the upstream; B3 debug is never rate-limited.
   * `admitted`: the trace already holds a token of the rate limit (a decision
   * made again, after a late context).
   */
  shouldSample(traceId: string, upstream: UpstreamSampling | null, nowUs: number, admitted = false): boolean {
    let yes: boolean
    if (upstream !== null && this.parentBased) {
      if (upstream.debug) return upstream.sampled
      yes = upstream.sampled
    } else {
      switch (this.c.name) {
        case 'always_on':
        case 'parentbased_always_on':
          yes = true
          break
        case 'always_off':
        case 'parentbased_always_off':
          yes = false
          break
        default:
          yes = ratioSample(traceId, this.c.ratio)
      }
    }
    return yes && (admitted || this.admit(nowUs))
  }

  private admit(nowUs: number): boolean {
    const limit = this.c.rateLimit
    if (limit <= 0) return true
    if (this.lastUs !== 0) this.tokens = Math.min(limit, this.tokens + ((nowUs - this.lastUs) / 1e6) * limit)
    this.lastUs = nowUs
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/**
 * Trace-id ratio: the low 52 bits of the trace id (exact in a double) against
 * ratio x 2^52, so that every agent and HAProxy sampling on the same id agree.
 */
export function ratioSample(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true
  if (ratio <= 0) return false
  return parseInt(traceId.slice(19), 16) < ratio * 2 ** 52
}
