// Every command-line option, declared once: its names, how yargs reads it,
// its help, the OTEL_* variables that also set it, and how its value is
// checked and where it goes in the Config. A Config option's long name is
// also its config-file key (-C); process options (logging, pidfile, -D,
// --check...) are command line only. cli.ts builds yargs from this table and
// applies the config file, the environment and the command line through it.
//
// The options are spoa-opentracing's, same short and long names, plus long
// options for what is new.

import type { Level } from 'pino'
import { CAPABILITIES, type Capability } from '../spop/index.js'
import { CPU_SCHEDS } from './cpu-sched.js'
import { checkHeaders, endpointToTracesUrl, EXPORTERS, parseKeyValueList, PROTOCOLS } from '../export/config.js'
import { LOG_ADDRESS_HELP } from '../intake/log/address.js'
import { parseLogIntakeAddresses } from '../intake/log/config.js'
import { parseMetricsAddress } from '../metrics/address.js'
import { propagatorsFrom, ratioFrom, samplerFrom } from '../tracing/config.js'
import { ConfigError } from '../util/config-error.js'
import { DURATION_HELP, parseDuration } from '../util/duration.js'
import type { Config } from './config.js'
import { type LogFile, type LogFormat, parseLogFile, parseLogLevel } from './logger.js'
import { resolveOwner } from './unix-owner.js'

/** Reads one value: a command-line string, or whatever a config file holds there. Throws a ConfigError naming `name`. */
export type Parse<T> = (raw: unknown, name: string) => T

interface OptionBase {
  alias?: string
  /** The --help section. */
  group: string
  describe: string
  /** Shown in --help as [default: ...]; the value itself is in DEFAULT_CONFIG. */
  default?: string
  /**
   * How yargs reads it: one value ('string'), every value up to the next
   * option ('array', as -c a b), or none ('boolean'). Numbers are read as
   * strings too: the option's own check then reports "eighty" as typed, not NaN.
   */
  type: 'string' | 'array' | 'boolean'
  /** Given again, it adds to the list; any other option given again: the last value counts (getopt's rule, the C agent's). */
  list?: true
  /**
   * The OTEL_* variables that also set it, below the command line and above
   * the config file. They keep the syntax the OpenTelemetry specification
   * gives them (times in milliseconds, a list for OTEL_TRACES_EXPORTER) and
   * are read by each layer's reader (export/config.ts, tracing/config.ts).
   */
  env?: readonly string[]
}

/** A setting of the Config; its long name is also a config-file key. */
export interface ConfigOption extends OptionBase {
  apply(c: Config, raw: unknown, name: string): void
}

/** The process around the daemon: command line only. */
export interface ProcessOption<T = unknown> extends OptionBase {
  process: true
  read: Parse<T>
  /** Accepted for compatibility with the C agent and otherwise ignored: the warning logged at start. */
  ignored?: string
}

export type Option = ConfigOption | ProcessOption

type Spec = Omit<OptionBase, 'type'> & { type?: OptionBase['type'] }

function setting<T>(spec: Spec, parse: Parse<T>, set: (c: Config, v: T) => void): ConfigOption {
  return { type: 'string', ...spec, apply: (c, raw, name) => set(c, parse(raw, name)) }
}

function processOption<T>(spec: Spec & { ignored?: string }, read: Parse<T>): ProcessOption<T> {
  return { type: 'string', ...spec, process: true, read }
}

const flag = (spec: Spec): ProcessOption<boolean> => processOption({ ...spec, type: 'boolean' }, (v) => v === true)

// Value readers.

const text: Parse<string> = (v) => String(v)

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Parse<number> {
  return (v, name) => {
    const n = typeof v === 'number' ? v : Number(String(v).trim())
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `expected an integer from ${min} to ${max}, got "${String(v)}"`)
    return n
  }
}

const duration: Parse<number> = (v, name) => {
  const ms = parseDuration(typeof v === 'number' ? v : String(v))
  if (ms === null) throw new ConfigError(name, `expected ${DURATION_HELP}, got "${String(v)}"`)
  return ms
}

function oneOf<T extends string>(allowed: readonly T[]): Parse<T> {
  return (v, name) => {
    const s = String(v).trim().toLowerCase()
    if (!(allowed as readonly string[]).includes(s)) throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${String(v)}"`)
    return s as T
  }
}

/** k=v,k2=v2 (repeated: joined), or a mapping in a config file. `secret`: errors never show the values. */
function keyValues(secret: boolean): Parse<Record<string, string>> {
  return (v, name) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]))
    return parseKeyValueList(name, String(v), secret)
  }
}

const capabilities: Parse<Capability[]> = (v, name) => {
  const list = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((x) => x.trim().toLowerCase()).filter(Boolean)
  for (const cap of list) {
    if (!(CAPABILITIES as readonly string[]).includes(cap)) throw new ConfigError(name, `expected ${CAPABILITIES.join(', ')}; got "${cap}"`)
  }
  return [...new Set(list)] as Capability[]
}

/** -a: a host (its port: -p's) or a unix socket, where -p has no meaning. */
const listenAddress: Parse<{ host: string } | { path: string }> = (v, name) => {
  const s = String(v).trim()
  if (s.startsWith('unix:')) {
    if (s.length <= 5) throw new ConfigError(name, 'expected unix:/path/to/socket')
    return { path: s.slice(5) }
  }
  if (s === '') throw new ConfigError(name, 'expected an address or unix:/path')
  return { host: s }
}

const unixMode: Parse<number> = (v, name) => {
  if (!/^0?[0-7]{3}$/.test(String(v).trim())) throw new ConfigError(name, `expected octal permissions like 660, got "${String(v)}"`)
  return parseInt(String(v).trim(), 8)
}

const G_SPOP = 'SPOP listener:'
const G_TRACE = 'Tracing:'
const G_EXPORT = 'Export (OTEL_* variables also apply):'
const G_PROC = 'Process:'
const G_METRICS = 'Metrics and health:'
const G_LOG = 'Log intake (compact profile over HAProxy log records):'

/** Every option, keyed by its long name; the order is that of --help, and of the problems reported. */
export const OPTIONS = {
  address: setting({ alias: 'a', group: G_SPOP, describe: 'Address to listen on, or unix:/path for a unix socket', default: '127.0.0.1 (the C agent used 0.0.0.0)' },
    listenAddress, (c, a) => (c.listen = 'path' in a ? a : { host: a.host, port: 'port' in c.listen ? c.listen.port : 12345 })),
  port: setting({ alias: 'p', group: G_SPOP, describe: 'TCP port to listen on', default: '12345' }, integer(0, 65535), (c, port) => {
    if ('port' in c.listen) c.listen = { host: c.listen.host, port }
  }),
  'unix-mode': setting({ group: G_SPOP, describe: 'Permissions of the unix socket, octal (e.g. 660): whoever can connect can inject spans' },
    unixMode, (c, mode) => (c.socketMode = mode)),
  'unix-owner': setting({ group: G_SPOP, describe: 'Owner of the unix socket, user[:group] (names or numbers)' },
    (v, name) => resolveOwner(name, String(v)), (c, owner) => (c.socketOwner = owner)),
  'connection-backlog': setting({ alias: 'b', group: G_SPOP, describe: 'Listen backlog', default: '511' }, integer(1, 65535), (c, n) => (c.backlog = n)),
  capability: setting({ alias: 'c', type: 'array', list: true, group: G_SPOP, describe: 'Capability offered to HAProxy, repeatable: pipelining, async, fragmentation', default: 'pipelining' },
    capabilities, (c, caps) => (c.capabilities = caps)),
  'max-frame-size': setting({ alias: 'm', group: G_SPOP, describe: "Largest frame accepted; HAProxy's own value is used when smaller", default: '16384' },
    integer(256, 1 << 24), (c, n) => (c.maxFrameSize = n)),
  'max-connections': setting({ group: G_SPOP, describe: 'Open SPOP connections at most (0 = no limit)', default: '4096' }, integer(0), (c, n) => (c.maxConnections = n)),
  'hello-timeout': setting({ group: G_SPOP, describe: 'Time a new connection has to complete its HELLO', default: '10s' },
    duration, (c, ms) => (c.timeouts = { ...c.timeouts, helloMs: ms })),
  'frame-timeout': setting({ group: G_SPOP, describe: 'Time a started frame has to arrive whole', default: '30s' },
    duration, (c, ms) => (c.timeouts = { ...c.timeouts, frameMs: ms })),
  'idle-timeout': setting({ group: G_SPOP, describe: 'Close connections idle this long (0 = never)', default: '0' },
    duration, (c, ms) => (c.timeouts = { ...c.timeouts, idleMs: ms })),
  'listen-retry': setting({ group: G_SPOP, describe: 'While the port is in use, keep trying to listen for this long (0 = fail at once)', default: '0' },
    duration, (c, ms) => (c.listenRetryMs = ms)),
  'processing-delay': setting({ alias: 't', group: G_SPOP, describe: 'Delay every ACK by this long (testing HAProxy timeouts)', default: '0' },
    duration, (c, ms) => (c.processingDelayMs = ms)),

  'ot-timeout-msg': setting({ alias: 'o', group: G_TRACE, describe: 'Status message of spans ended by the idle reaper', default: '"connection timeout"' },
    text, (c, s) => (c.tree = { ...c.tree, timeoutMessage: s })),
  'tree-ttl': setting({ group: G_TRACE, describe: 'Reap a request whose spans saw no event for this long', default: '30s' },
    duration, (c, ms) => (c.tree = { ...c.tree, idleTtlMs: ms })),
  'max-trees': setting({ group: G_TRACE, describe: 'Open requests traced at once at most', default: '20000' },
    integer(1), (c, n) => (c.tree = { ...c.tree, maxTrees: n })),
  'max-spans-per-tree': setting({ group: G_TRACE, describe: 'Spans per request at most', default: '256' },
    integer(1), (c, n) => (c.tree = { ...c.tree, maxSpansPerTree: n })),
  'max-attributes': setting({ group: G_TRACE, describe: 'Attributes per span at most', env: ['OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT', 'OTEL_ATTRIBUTE_COUNT_LIMIT'], default: '128' },
    integer(0), (c, n) => (c.spanLimits = { ...c.spanLimits, maxAttributes: n })),
  'max-attribute-length': setting({ group: G_TRACE, describe: 'Characters per attribute value at most, longer ones truncated; 0 = no limit', env: ['OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'], default: '4096' },
    integer(0), (c, n) => (c.spanLimits = { ...c.spanLimits, maxAttributeLength: n })),
  'max-events': setting({ group: G_TRACE, describe: 'Events (log=) per span at most', env: ['OTEL_SPAN_EVENT_COUNT_LIMIT'], default: '128' },
    integer(0), (c, n) => (c.spanLimits = { ...c.spanLimits, maxEvents: n })),
  'service-name': setting({ group: G_TRACE, describe: 'service.name of the spans', env: ['OTEL_SERVICE_NAME'], default: 'haproxy' },
    text, (c, s) => (c.export.resource['service.name'] = s)),
  'resource-attributes': setting({ list: true, group: G_TRACE, describe: 'More resource attributes, k=v,k2=v2', env: ['OTEL_RESOURCE_ATTRIBUTES'] },
    keyValues(false), (c, kv) => Object.assign(c.export.resource, kv)),
  propagators: setting({ list: true, group: G_TRACE, describe: 'Context formats read by extract= and written by inject=: tracecontext, baggage, b3, b3multi, jaeger, or none', env: ['OTEL_PROPAGATORS'], default: 'tracecontext,baggage' },
    (v, name) => propagatorsFrom(name, String(v)), (c, p) => (c.tracing = { ...c.tracing, propagators: p })),
  sampler: setting({ group: G_TRACE, describe: 'always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio', env: ['OTEL_TRACES_SAMPLER'], default: 'parentbased_always_on' },
    (v, name) => samplerFrom(name, String(v)), (c, s) => (c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, name: s } })),
  'sampler-arg': setting({ group: G_TRACE, describe: 'Ratio of the traceidratio samplers, 0 to 1', env: ['OTEL_TRACES_SAMPLER_ARG'], default: '1' },
    (v, name) => ratioFrom(name, v as string | number), (c, r) => (c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, ratio: r } })),
  'sampler-rate-limit': setting({ group: G_TRACE, describe: 'New sampled traces per second at most (0 = no limit)', default: '0' },
    integer(0), (c, n) => (c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, rateLimit: n } })),

  exporter: setting({ group: G_EXPORT, describe: `Where spans go: ${EXPORTERS.join(', ')}`, env: ['OTEL_TRACES_EXPORTER'], default: 'otlp' },
    oneOf(EXPORTERS), (c, e) => (c.export.exporter = e)),
  endpoint: setting({ group: G_EXPORT, describe: 'OTLP/HTTP endpoint; /v1/traces is appended unless present', env: ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'], default: 'http://localhost:4318' },
    (v, name) => endpointToTracesUrl(name, String(v)), (c, url) => (c.export.endpoint = url)),
  protocol: setting({ group: G_EXPORT, describe: PROTOCOLS.join(' or '), env: ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'], default: 'http/protobuf' },
    oneOf(PROTOCOLS), (c, p) => (c.export.protocol = p)),
  headers: setting({ list: true, group: G_EXPORT, describe: 'Extra HTTP headers, k=v,k2=v2', env: ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'] },
    (v, name) => checkHeaders(name, keyValues(true)(v, name)), (c, h) => Object.assign(c.export.headers, h)),
  'export-timeout': setting({ group: G_EXPORT, describe: 'Time one export request may take; a batch that fails is sent again later', env: ['OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_BSP_EXPORT_TIMEOUT'], default: '10s' },
    duration, (c, ms) => (c.export.timeoutMs = Math.max(1, ms))),
  'output-file': setting({ group: G_EXPORT, describe: 'File of the file exporter: OTLP/JSON, one request per line', default: 'spans.jsonl' },
    text, (c, f) => (c.export.file = f)),
  'num-workers': setting({ alias: 'n', group: G_EXPORT, describe: 'Export worker threads (0: the tracing thread sends, --cpu-sched tracing-idle only)', default: '1' }, integer(0, 64), (c, n) => (c.export.numWorkers = n)),
  'queue-size': setting({ group: G_EXPORT, describe: 'Spans queued for export at most; beyond, dropped and counted', env: ['OTEL_BSP_MAX_QUEUE_SIZE'], default: '32768' },
    integer(1), (c, n) => (c.export.maxQueueSize = n)),
  'batch-size': setting({ group: G_EXPORT, describe: 'Spans per export request at most', env: ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'], default: '2048' },
    integer(1), (c, n) => (c.export.maxBatchSize = n)),
  'batch-delay': setting({ group: G_EXPORT, describe: 'Longest wait before a partial batch is sent', env: ['OTEL_BSP_SCHEDULE_DELAY'], default: '500ms' },
    duration, (c, ms) => (c.export.scheduledDelayMs = ms)),
  'ot-tracer-config': processOption({ alias: 'C', group: G_EXPORT, describe: 'Configuration file, YAML or JSON, keyed by these long option names' }, text),

  debug: processOption({ alias: 'd', group: G_PROC, describe: 'Log level: fatal, error, warn, info, debug, trace (or 0, 1, 2)', default: 'info' },
    (v): Level | 'silent' => parseLogLevel(String(v))),
  logfile: processOption({ alias: 'l', group: G_PROC, describe: 'Log to [MODE:]FILE; MODE a (append) or w (truncate), capitals for line-buffered', default: 'stdout' },
    (v): LogFile => parseLogFile(String(v))),
  'log-format': processOption({ group: G_PROC, describe: 'json or pretty', default: 'pretty on a terminal, json otherwise' }, oneOf<LogFormat>(['json', 'pretty'])),
  daemonize: flag({ alias: 'D', group: G_PROC, describe: 'Run in the background, detached' }),
  supervise: flag({ group: G_PROC, describe: 'Run the agent under a small parent that restarts it whenever it exits (--no-supervise: never)', default: 'when launched by HAProxy' }),
  pidfile: processOption({ alias: 'F', group: G_PROC, describe: 'Write the process id to this file once listening' }, text),
  'monitor-interval': setting({ alias: 'i', group: G_PROC, describe: 'Period of the statistics log line (0 = off)', default: '5s' },
    duration, (c, ms) => (c.monitorIntervalMs = ms)),
  runtime: setting({ alias: 'r', group: G_PROC, describe: 'Stop by itself after this long (0 = unlimited)', default: '0' }, duration, (c, ms) => (c.runtimeMs = ms)),
  'cpu-sched': setting({ group: G_PROC, describe: "CPU scheduling (Linux SCHED_IDLE: only CPU time HAProxy and the rest leave). idle: the whole agent, for one that only takes the log stream (HAProxy waits for SPOE's answers); tracing-idle: for SPOE, the main thread answers HAProxy at the normal policy and a tracing thread builds and exports the spans on idle time", default: 'normal' },
    oneOf(CPU_SCHEDS), (c, v) => (c.cpuSched = v)),
  'shutdown-timeout': setting({ group: G_PROC, describe: 'Deadline of a graceful stop (in-flight frames, open trees, export flush)', default: '10s' },
    duration, (c, ms) => (c.shutdownTimeoutMs = ms)),

  'metrics-address': setting({ group: G_METRICS, describe: 'Serve /metrics (Prometheus), /healthz and /readyz on [host:]port (a bare port is 127.0.0.1:port) or unix:/path', default: 'off' },
    (v, name) => parseMetricsAddress(name, v), (c, a) => (c.metricsAddress = a)),
  'ready-export-failure-threshold': setting({ group: G_METRICS, describe: '/readyz fails once exports have failed without a success for this long', default: '60s' },
    duration, (c, ms) => (c.readyExportFailureThresholdMs = ms)),

  'log-intake': setting({ type: 'array', list: true, group: G_LOG, describe: `Also receive the compact profile as HAProxy log records (haproxy/haproxy-compact-log.cfg), repeatable: ${LOG_ADDRESS_HELP}`, default: 'off' },
    (v, name) => parseLogIntakeAddresses(name, v), (c, a) => (c.logIntake = { ...c.logIntake, addresses: a })),
  'log-max-record': setting({ group: G_LOG, describe: 'Bytes of one log record at most', default: '65536' },
    integer(480, 1 << 20), (c, n) => (c.logIntake = { ...c.logIntake, maxRecordBytes: n })),
  'log-max-connections': setting({ group: G_LOG, describe: 'TCP log connections at most', default: '64' },
    integer(1, 65535), (c, n) => (c.logIntake = { ...c.logIntake, maxConnections: n })),
  'log-read-pause': setting({ group: G_LOG, describe: 'How long a TCP log stream rests after a read that emptied its socket, to take more records per read (0 = read at once)', default: '10ms' },
    (v, name) => {
      const ms = duration(v, name)
      if (ms > 1000) throw new ConfigError(name, `${String(v)} is too long: at most 1s (records wait that long in the kernel and HAProxy's ring)`)
      return ms
    }, (c, ms) => (c.logIntake = { ...c.logIntake, readPauseMs: ms })),
  'log-receive-buffer': setting({ group: G_LOG, describe: 'Receive buffer of UDP and unix log sockets, bytes (capped by net.core.rmem_max)', default: '4194304' },
    integer(4096, 1 << 30), (c, n) => (c.logIntake = { ...c.logIntake, receiveBufferBytes: n })),

  'ot-tracer-plugin': processOption({ alias: 'T', group: G_PROC, describe: 'Accepted for compatibility; has no meaning here (export is built in)', ignored: '-T/--ot-tracer-plugin is ignored: spoa-tracer exports with OpenTelemetry itself (see --exporter)' },
    text),
  'libev-backend': processOption({ alias: 'B', group: G_PROC, describe: 'Accepted for compatibility; has no meaning here (Node.js has its own event loop)', ignored: '-B/--libev-backend is ignored: Node.js runs its own event loop' },
    text),
  check: flag({ group: G_PROC, describe: 'Check the configuration (values, config file, addresses, files, exporter settings) without serving; exit 0 if valid, 2 if not' }),
  help: flag({ alias: 'h', group: G_PROC, describe: 'Show this help' }),
  version: flag({ alias: 'V', group: G_PROC, describe: 'Show the version' }),
  'print-share-dir': flag({ group: G_PROC, describe: 'Print the directory of the shipped haproxy/ and contrib/ files, and exit' }),
} satisfies Record<string, Option>

/** The same table, looked up by a name read at run time (a config-file key). */
export const OPTION_TABLE: Readonly<Record<string, Option>> = OPTIONS

/** The option named `name`, if there is one (never an Object.prototype member). */
export function optionNamed(name: string): Option | undefined {
  return Object.hasOwn(OPTION_TABLE, name) ? OPTION_TABLE[name] : undefined
}

export function isConfigOption(o: Option | undefined): o is ConfigOption {
  return o !== undefined && !('process' in o)
}

/** The --help text of an option: what it does, its variables, its default. */
export function helpText(o: Option): string {
  const env = o.env !== undefined ? ` (${o.env.join(', ')})` : ''
  const dflt = o.default !== undefined ? ` [default: ${o.default}]` : ''
  return `${o.describe}${env}${dflt}`
}
