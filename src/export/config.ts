// What the export side needs to know, and how the standard OpenTelemetry
// environment variables map onto it. Pure: (env) -> ExportConfig, so the CLI
// can apply its own precedence (flags > OTEL_* > config file > defaults).

import { validateHeaderName, validateHeaderValue } from 'node:http'
import { ConfigError } from '../util/config-error.js'
import { redactUrl } from '../util/redact.js'

export const EXPORTERS = ['otlp', 'console', 'file', 'none'] as const
export type ExporterKind = (typeof EXPORTERS)[number]
export const PROTOCOLS = ['http/protobuf', 'http/json'] as const
export type OtlpProtocol = (typeof PROTOCOLS)[number]

export interface ExportConfig {
  exporter: ExporterKind
  protocol: OtlpProtocol
  /** The full traces URL (…/v1/traces). */
  endpoint: string
  headers: Record<string, string>
  /** Per export request (one attempt). */
  timeoutMs: number
  compression: 'none' | 'gzip'
  /** Output of the file exporter: OTLP/JSON, one ExportTraceServiceRequest per line. */
  file: string
  numWorkers: number
  /** Spans queued or in flight at most; beyond, whole trees are dropped and counted. */
  maxQueueSize: number
  maxBatchSize: number
  scheduledDelayMs: number
  /** Export requests in flight per worker at most. */
  maxConcurrentExports: number
  /** Resource attributes (service.name, OTEL_RESOURCE_ATTRIBUTES). */
  resource: Record<string, string>
}

/**
 * Defaults sized for a proxy: the OTel defaults (queue 2048, batch 512, 5 s)
 * drop spans within milliseconds at tens of thousands of spans per second.
 */
export const DEFAULT_EXPORT_CONFIG: ExportConfig = {
  exporter: 'otlp',
  protocol: 'http/protobuf',
  endpoint: 'http://localhost:4318/v1/traces',
  headers: {},
  timeoutMs: 10_000,
  compression: 'none',
  file: 'spans.jsonl',
  numWorkers: 1,
  maxQueueSize: 32_768,
  maxBatchSize: 2048,
  scheduledDelayMs: 500,
  maxConcurrentExports: 4,
  resource: { 'service.name': 'haproxy' },
}

type Env = Record<string, string | undefined>

const present = (v: string | undefined): v is string => v !== undefined && v.trim() !== ''

function int(env: Env, name: string, min: number): number | undefined {
  const raw = env[name]
  if (!present(raw)) return undefined
  const n = Number(raw.trim())
  if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `expected an integer >= ${min}, got "${raw}"`)
  return n
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  const raw = env[name]
  if (!present(raw)) return undefined
  const v = raw.trim().toLowerCase()
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${raw}"`)
  }
  return v as T
}

/**
 * "k1=v1,k2=v2" with percent-encoded values (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES). `secret`: the values are credentials, so an
 * error names the entry, never its text.
 */
export function parseKeyValueList(name: string, raw: string, secret = false): Record<string, string> {
  const out: Record<string, string> = {}
  const parts = raw.split(',')
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (part.trim() === '') continue
    const shown = secret ? `entry ${i + 1}` : `"${part.trim()}"`
    const eq = part.indexOf('=')
    if (eq <= 0) throw new ConfigError(name, `expected key=value pairs separated by commas, got ${shown}`)
    try {
      out[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim())
    } catch {
      throw new ConfigError(name, `bad percent-encoding in ${shown}`)
    }
  }
  return out
}

/** Export headers: names must be HTTP tokens and values legal header text, or every export would fail. */
export function checkHeaders(name: string, headers: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(headers)) {
    try {
      validateHeaderName(k)
    } catch {
      throw new ConfigError(name, `"${k}" is not a valid HTTP header name`)
    }
    try {
      validateHeaderValue(k, v)
    } catch {
      throw new ConfigError(name, `the value of header "${k}" has characters HTTP does not allow`)
    }
  }
  return headers
}

/** An OTLP/HTTP URL: http or https. Error messages never show its credentials. */
export function checkUrl(name: string, url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new ConfigError(name, `not a URL: "${redactUrl(url)}"`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(name, `expected http:// or https://, got "${redactUrl(url)}"`)
  return url
}

/** --endpoint as the traces URL: like OTEL_EXPORTER_OTLP_ENDPOINT, unless it already names /v1/traces. */
export function endpointToTracesUrl(name: string, base: string): string {
  const s = checkUrl(name, base.trim())
  const u = new URL(s)
  if (/\/v1\/traces\/?$/.test(u.pathname)) return s
  // On the path, before any query string (?api_key=...).
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`
  return u.toString()
}

/** The traces URL per the OTLP exporter spec: signal endpoint as is, base endpoint + /v1/traces. */
export function tracesEndpoint(env: Env): string | undefined {
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  if (present(signal)) return checkUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', signal.trim())
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT
  if (present(base)) return checkUrl('OTEL_EXPORTER_OTLP_ENDPOINT', `${base.trim().replace(/\/+$/, '')}/v1/traces`)
  return undefined
}

/**
 * Reads the OTEL_* variables on top of `base`. Throws ConfigError on a bad
 * value. Unset variables leave `base` as it is.
 */
export function exportConfigFromEnv(env: Env, base: ExportConfig = DEFAULT_EXPORT_CONFIG): ExportConfig {
  const c: ExportConfig = { ...base, headers: { ...base.headers }, resource: { ...base.resource } }
  const exporter = env.OTEL_TRACES_EXPORTER
  if (present(exporter)) {
    // A list is allowed by the spec; one exporter is what this agent runs.
    const first = exporter.split(',')[0]!.trim().toLowerCase()
    if (!(EXPORTERS as readonly string[]).includes(first)) {
      throw new ConfigError('OTEL_TRACES_EXPORTER', `expected one of ${EXPORTERS.join(', ')}, got "${exporter}"`)
    }
    c.exporter = first as ExporterKind
  }
  const protocol =
    oneOf(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', PROTOCOLS) ?? oneOf(env, 'OTEL_EXPORTER_OTLP_PROTOCOL', PROTOCOLS)
  if (protocol) c.protocol = protocol
  c.endpoint = tracesEndpoint(env) ?? c.endpoint
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    const raw = env[name]
    if (present(raw)) Object.assign(c.headers, checkHeaders(name, parseKeyValueList(name, raw, true)))
  }
  // OTEL_BSP_EXPORT_TIMEOUT bounds one export; with the exporter's own timeout set, that one wins.
  c.timeoutMs =
    int(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 1) ??
    int(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', 1) ??
    int(env, 'OTEL_BSP_EXPORT_TIMEOUT', 1) ??
    c.timeoutMs
  const compression =
    oneOf(env, 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION', ['none', 'gzip'] as const) ??
    oneOf(env, 'OTEL_EXPORTER_OTLP_COMPRESSION', ['none', 'gzip'] as const)
  if (compression) c.compression = compression
  c.maxQueueSize = int(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 1) ?? c.maxQueueSize
  c.maxBatchSize = int(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 1) ?? c.maxBatchSize
  c.scheduledDelayMs = int(env, 'OTEL_BSP_SCHEDULE_DELAY', 0) ?? c.scheduledDelayMs
  if (present(env.OTEL_RESOURCE_ATTRIBUTES)) {
    Object.assign(c.resource, parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', env.OTEL_RESOURCE_ATTRIBUTES))
  }
  if (present(env.OTEL_SERVICE_NAME)) c.resource['service.name'] = env.OTEL_SERVICE_NAME.trim()
  return validateExportConfig(c)
}

export function validateExportConfig(c: ExportConfig): ExportConfig {
  if (c.maxBatchSize > c.maxQueueSize) {
    throw new ConfigError('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', `must not exceed the queue size (${c.maxQueueSize})`)
  }
  if (c.numWorkers < 0 || c.numWorkers > 64) throw new ConfigError('num-workers', 'expected 0 to 64')
  if (c.exporter === 'otlp') checkUrl('endpoint', c.endpoint)
  return c
}
