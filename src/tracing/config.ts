// Tracing settings that have standard OpenTelemetry variables: which context
// formats are read and written (OTEL_PROPAGATORS) and the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG). Pure, like export/config.ts.

import { ConfigError } from '../util/config-error.js'
import { parsePropagators, PROPAGATORS, type Propagator } from './propagation.js'
import { DEFAULT_SAMPLER, type SamplerConfig, type SamplerName, SAMPLERS } from './sampler.js'
import type { SpanLimits } from './trace.js'

export interface TracingConfig {
  propagators: Propagator[]
  sampler: SamplerConfig
}

export const DEFAULT_TRACING_CONFIG: TracingConfig = {
  propagators: ['tracecontext', 'baggage'],
  sampler: DEFAULT_SAMPLER,
}

type Env = Record<string, string | undefined>

export function propagatorsFrom(option: string, raw: string): Propagator[] {
  const { propagators, unknown } = parsePropagators(raw)
  if (unknown.length > 0) {
    throw new ConfigError(option, `unknown propagator "${unknown[0]}"; expected ${PROPAGATORS.join(', ')} or none`)
  }
  return propagators
}

export function samplerFrom(option: string, raw: string): SamplerName {
  const v = raw.trim().toLowerCase()
  if (!(SAMPLERS as readonly string[]).includes(v)) throw new ConfigError(option, `expected one of ${SAMPLERS.join(', ')}, got "${raw}"`)
  return v as SamplerName
}

export function ratioFrom(option: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(String(raw).trim())
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new ConfigError(option, `expected a ratio from 0 to 1, got "${raw}"`)
  return n
}

function limit(env: Env, names: string[], min: number): number | undefined {
  for (const name of names) {
    const raw = env[name]
    if (raw === undefined || raw.trim() === '') continue
    const n = Number(raw.trim())
    if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `expected an integer >= ${min}, got "${raw}"`)
    return n
  }
  return undefined
}

/** OTEL_SPAN_* limits (the general OTEL_ATTRIBUTE_* ones apply when the span ones are unset). */
export function spanLimitsFromEnv(env: Env, base: SpanLimits): SpanLimits {
  return {
    maxAttributes: limit(env, ['OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT', 'OTEL_ATTRIBUTE_COUNT_LIMIT'], 0) ?? base.maxAttributes,
    maxAttributeLength:
      limit(env, ['OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'], 0) ?? base.maxAttributeLength,
    maxEvents: limit(env, ['OTEL_SPAN_EVENT_COUNT_LIMIT'], 0) ?? base.maxEvents,
    maxLinks: limit(env, ['OTEL_SPAN_LINK_COUNT_LIMIT'], 0) ?? base.maxLinks,
  }
}

export function tracingConfigFromEnv(env: Env, base: TracingConfig = DEFAULT_TRACING_CONFIG): TracingConfig {
  const c: TracingConfig = { propagators: [...base.propagators], sampler: { ...base.sampler } }
  const p = env.OTEL_PROPAGATORS
  if (p !== undefined && p.trim() !== '') c.propagators = propagatorsFrom('OTEL_PROPAGATORS', p)
  const s = env.OTEL_TRACES_SAMPLER
  if (s !== undefined && s.trim() !== '') c.sampler.name = samplerFrom('OTEL_TRACES_SAMPLER', s)
  const arg = env.OTEL_TRACES_SAMPLER_ARG
  if (arg !== undefined && arg.trim() !== '' && c.sampler.name.endsWith('traceidratio')) {
    c.sampler.ratio = ratioFrom('OTEL_TRACES_SAMPLER_ARG', arg)
  }
  return c
}
