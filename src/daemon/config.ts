// The one validated configuration object everything below the CLI takes.
// Defaults live here; cli.ts layers flags, OTEL_* variables and the config
// file on top (in that order of precedence) and calls validateConfig().

import type { ConnectionTimeouts, ListenAddress } from '../agent/index.js'
import { DEFAULT_TIMEOUTS } from '../agent/index.js'
import type { CpuSched } from './cpu-sched.js'
import { type ExportConfig, DEFAULT_EXPORT_CONFIG, validateExportConfig } from '../export/config.js'
import { DEFAULT_LOG_INTAKE_CONFIG, type LogIntakeConfig } from '../intake/log/config.js'
import type { Capability } from '../spop/index.js'
import { MIN_MAX_FRAME_SIZE } from '../spop/index.js'
import { DEFAULT_TRACING_CONFIG, type TracingConfig } from '../tracing/config.js'
import { DEFAULT_SPAN_LIMITS, type SpanLimits } from '../tracing/trace.js'
import { DEFAULT_TREE_LIMITS, type TreeLimits } from '../tracing/trace-store.js'
import { ConfigError } from '../util/config-error.js'
import { redactHeaders, redactUrl } from '../util/redact.js'

export interface Config {
  listen: ListenAddress
  backlog: number
  /** -m: the largest frame accepted; HAProxy's own value is echoed when it is smaller. */
  maxFrameSize: number
  /** -c: offered to HAProxy, intersected with what it offers. */
  capabilities: Capability[]
  maxConnections: number
  timeouts: ConnectionTimeouts
  tree: TreeLimits
  spanLimits: SpanLimits
  /** Context formats (extract=, inject=) and the sampler. */
  tracing: TracingConfig
  export: ExportConfig
  /** Deadline for a graceful stop: in-flight frames, open trees, export flush. */
  shutdownTimeoutMs: number
  /** -t: an artificial delay before each ACK (testing HAProxy's timeout processing). */
  processingDelayMs: number
  /** -i: period of the statistics line (0 = off). */
  monitorIntervalMs: number
  /** -r: stop by itself after this long (0 = run until signalled). */
  runtimeMs: number
  /** --listen-retry: keep trying an address in use for this long (0 = fail at once). */
  listenRetryMs: number
  /** Unix socket permissions and owner (--unix-mode, --unix-owner). */
  socketMode: number | null
  socketOwner: { uid: number; gid: number } | null
  /** --metrics-address: the /metrics, /healthz, /readyz endpoint (null = off, the default). */
  metricsAddress: ListenAddress | null
  /** /readyz answers 503 once exports have failed without a success for longer than this. */
  readyExportFailureThresholdMs: number
  /** --log-intake: HAProxy log records as a second intake of the compact profile (off by default). */
  logIntake: LogIntakeConfig
  /** --cpu-sched: `idle` runs the agent only on CPU time nothing else wants; `tracing-idle` so runs its tracing thread (cpu-sched.ts). */
  cpuSched: CpuSched
}

export const DEFAULT_CONFIG: Config = {
  listen: { host: '127.0.0.1', port: 12345 },
  backlog: 511,
  maxFrameSize: 16384,
  capabilities: ['pipelining'],
  maxConnections: 4096,
  timeouts: DEFAULT_TIMEOUTS,
  tree: DEFAULT_TREE_LIMITS,
  spanLimits: DEFAULT_SPAN_LIMITS,
  tracing: DEFAULT_TRACING_CONFIG,
  export: DEFAULT_EXPORT_CONFIG,
  shutdownTimeoutMs: 10_000,
  processingDelayMs: 0,
  monitorIntervalMs: 5000,
  runtimeMs: 0,
  listenRetryMs: 0,
  socketMode: null,
  socketOwner: null,
  metricsAddress: null,
  readyExportFailureThresholdMs: 60_000,
  logIntake: DEFAULT_LOG_INTAKE_CONFIG,
  cpuSched: 'normal',
}

export function validateConfig(c: Config): Config {
  if (!Number.isInteger(c.maxFrameSize) || c.maxFrameSize < MIN_MAX_FRAME_SIZE || c.maxFrameSize > 1 << 24) {
    throw new ConfigError('max-frame-size', `expected an integer from ${MIN_MAX_FRAME_SIZE} to ${1 << 24}, got ${c.maxFrameSize}`)
  }
  if ('port' in c.listen && (!Number.isInteger(c.listen.port) || c.listen.port < 0 || c.listen.port > 65535)) {
    throw new ConfigError('port', `expected 0 to 65535, got ${c.listen.port}`)
  }
  if (c.tree.maxTrees < 1) throw new ConfigError('max-trees', 'expected at least 1')
  if (c.tree.maxSpansPerTree < 1) throw new ConfigError('max-spans-per-tree', 'expected at least 1')
  if (c.tree.idleTtlMs < 1) throw new ConfigError('tree-ttl', 'expected a positive time')
  validateExportConfig(c.export)
  validateMetricsConfig(c)
  if (c.cpuSched === 'tracing-idle' && c.logIntake.addresses.length > 0) {
    // The log intake applies records to the trees on the main thread, which
    // this policy leaves to the tracing thread. A log-only agent wants idle.
    throw new ConfigError('--cpu-sched', 'tracing-idle is for SPOE and cannot take --log-intake; an agent that only takes the log stream runs with --cpu-sched idle')
  }
  if (c.export.numWorkers === 0 && c.cpuSched !== 'tracing-idle' && c.export.exporter !== 'none') {
    // The thread that builds the trees would send: the main thread, which answers HAProxy.
    throw new ConfigError('num-workers', '0 (no export worker) needs --cpu-sched tracing-idle, whose tracing thread then sends the requests')
  }
  return c
}

function validateMetricsConfig(c: Config): void {
  const m = c.metricsAddress
  if (m !== null && 'port' in m) {
    if (!Number.isInteger(m.port) || m.port < 0 || m.port > 65535) throw new ConfigError('metrics-address', `expected a port from 0 to 65535, got ${m.port}`)
    if ('port' in c.listen && m.port !== 0 && m.port === c.listen.port && m.host === c.listen.host) {
      throw new ConfigError('metrics-address', `${m.host}:${m.port} is the SPOP listener's address; pick another port`)
    }
  }
  if (m !== null && 'path' in m && 'path' in c.listen && m.path === c.listen.path) {
    throw new ConfigError('metrics-address', `unix:${m.path} is the SPOP listener's socket; pick another path`)
  }
  if (!(c.readyExportFailureThresholdMs >= 0)) throw new ConfigError('ready-export-failure-threshold', 'expected a time of 0 or more')
}

/** The configuration as it may be shown (debug log, --check): endpoint credentials and header values masked. */
export function printableConfig(c: Config): Config {
  return { ...c, export: { ...c.export, endpoint: redactUrl(c.export.endpoint), headers: redactHeaders(c.export.headers) } }
}
