// Command line -> one validated Config. Pure (argv, env, files in; a result
// out), so every option is tested without starting anything.
//
// The options are spoa-opentracing's, same short and long names, plus long
// options for what is new. A config file (-C, YAML or JSON) takes the same
// long names as keys. Precedence: flags > OTEL_* environment > config file >
// defaults. A bad value is a ConfigError naming the option and what it
// accepts; run.ts prints it on one line and exits with status 2.

import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import yargs from 'yargs'
import { type Config, DEFAULT_CONFIG, validateConfig } from './config.js'
import { checkHeaders, endpointToTracesUrl, EXPORTERS, exportConfigFromEnv, parseKeyValueList, PROTOCOLS } from '../export/config.js'
import { type LogOptions, parseLogFile, parseLogLevel } from './logger.js'
import { applyLogIntakeOption, LOG_INTAKE_OPTIONS } from '../intake/log/config.js'
import { parseMetricsAddress } from '../metrics/address.js'
import { type Capability, CAPABILITIES } from '../spop/index.js'
import { propagatorsFrom, ratioFrom, samplerFrom, spanLimitsFromEnv, tracingConfigFromEnv } from '../tracing/config.js'
import { ConfigError, ProblemList } from '../util/config-error.js'
import { DURATION_HELP, parseDuration } from '../util/duration.js'
import { PACKAGE_DIR, VERSION } from './version.js'

type Kind = 'string' | 'number' | 'boolean' | 'array'

interface OptionSpec {
  alias?: string
  type: Kind
  describe: string
  group: string
  /** Process options are not Config fields and cannot come from the config file. */
  process?: boolean
}

const G_SPOP = 'SPOP listener:'
const G_TRACE = 'Tracing:'
const G_EXPORT = 'Export (OTEL_* variables also apply):'
const G_PROC = 'Process:'
const G_METRICS = 'Metrics and health:'
const G_LOG = 'Log intake (compact profile over HAProxy log records):'

/** Every option; the key is the long name (also the config-file key). */
export const OPTIONS: Record<string, OptionSpec> = {
  address: { alias: 'a', type: 'string', group: G_SPOP, describe: 'Address to listen on, or unix:/path for a unix socket [default: 127.0.0.1 (the C agent used 0.0.0.0)]' },
  port: { alias: 'p', type: 'number', group: G_SPOP, describe: 'TCP port to listen on [default: 12345]' },
  'unix-mode': { type: 'string', group: G_SPOP, describe: 'Permissions of the unix socket, octal (e.g. 660): whoever can connect can inject spans' },
  'unix-owner': { type: 'string', group: G_SPOP, describe: 'Owner of the unix socket, user[:group] (names or numbers)' },
  'connection-backlog': { alias: 'b', type: 'number', group: G_SPOP, describe: 'Listen backlog [default: 511]' },
  capability: { alias: 'c', type: 'array', group: G_SPOP, describe: 'Capability offered to HAProxy, repeatable: pipelining, async, fragmentation [default: pipelining]' },
  'max-frame-size': { alias: 'm', type: 'number', group: G_SPOP, describe: "Largest frame accepted; HAProxy's own value is used when smaller [default: 16384]" },
  'max-connections': { type: 'number', group: G_SPOP, describe: 'Open SPOP connections at most (0 = no limit) [default: 4096]' },
  'hello-timeout': { type: 'string', group: G_SPOP, describe: 'Time a new connection has to complete its HELLO [default: 10s]' },
  'frame-timeout': { type: 'string', group: G_SPOP, describe: 'Time a started frame has to arrive whole [default: 30s]' },
  'idle-timeout': { type: 'string', group: G_SPOP, describe: 'Close connections idle this long (0 = never) [default: 0]' },
  'listen-retry': { type: 'string', group: G_SPOP, describe: 'While the port is in use, keep trying to listen for this long (0 = fail at once) [default: 0]' },
  'processing-delay': { alias: 't', type: 'string', group: G_SPOP, describe: 'Delay every ACK by this long (testing HAProxy timeouts) [default: 0]' },
  'ot-timeout-msg': { alias: 'o', type: 'string', group: G_TRACE, describe: 'Status message of spans ended by the idle reaper [default: "connection timeout"]' },
  'tree-ttl': { type: 'string', group: G_TRACE, describe: 'Reap a request whose spans saw no event for this long [default: 30s]' },
  'max-trees': { type: 'number', group: G_TRACE, describe: 'Open requests traced at once at most [default: 20000]' },
  'max-spans-per-tree': { type: 'number', group: G_TRACE, describe: 'Spans per request at most [default: 256]' },
  'max-attributes': { type: 'number', group: G_TRACE, describe: 'Attributes per span at most (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT) [default: 128]' },
  'max-attribute-length': { type: 'number', group: G_TRACE, describe: 'Characters per attribute value at most, longer ones truncated; 0 = no limit (OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT) [default: 4096]' },
  'max-events': { type: 'number', group: G_TRACE, describe: 'Events (log=) per span at most (OTEL_SPAN_EVENT_COUNT_LIMIT) [default: 128]' },
  'service-name': { type: 'string', group: G_TRACE, describe: 'service.name of the spans (OTEL_SERVICE_NAME) [default: haproxy]' },
  'resource-attributes': { type: 'string', group: G_TRACE, describe: 'More resource attributes, k=v,k2=v2 (OTEL_RESOURCE_ATTRIBUTES)' },
  propagators: { type: 'string', group: G_TRACE, describe: 'Context formats read by extract= and written by inject=: tracecontext, baggage, b3, b3multi, jaeger, or none (OTEL_PROPAGATORS) [default: tracecontext,baggage]' },
  sampler: { type: 'string', group: G_TRACE, describe: 'always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio (OTEL_TRACES_SAMPLER) [default: parentbased_always_on]' },
  'sampler-arg': { type: 'string', group: G_TRACE, describe: 'Ratio of the traceidratio samplers, 0 to 1 (OTEL_TRACES_SAMPLER_ARG) [default: 1]' },
  'sampler-rate-limit': { type: 'number', group: G_TRACE, describe: 'New sampled traces per second at most (0 = no limit) [default: 0]' },
  exporter: { type: 'string', group: G_EXPORT, describe: `Where spans go: ${EXPORTERS.join(', ')} (OTEL_TRACES_EXPORTER) [default: otlp]` },
  endpoint: { type: 'string', group: G_EXPORT, describe: 'OTLP/HTTP endpoint; /v1/traces is appended unless present (OTEL_EXPORTER_OTLP_ENDPOINT) [default: http://localhost:4318]' },
  protocol: { type: 'string', group: G_EXPORT, describe: `${PROTOCOLS.join(' or ')} (OTEL_EXPORTER_OTLP_PROTOCOL) [default: http/protobuf]` },
  headers: { type: 'string', group: G_EXPORT, describe: 'Extra HTTP headers, k=v,k2=v2 (OTEL_EXPORTER_OTLP_HEADERS)' },
  'export-timeout': { type: 'string', group: G_EXPORT, describe: 'Time one export request may take; a batch that fails is sent again later (OTEL_EXPORTER_OTLP_TIMEOUT) [default: 10s]' },
  'output-file': { type: 'string', group: G_EXPORT, describe: 'File of the file exporter: OTLP/JSON, one request per line [default: spans.jsonl]' },
  'num-workers': { alias: 'n', type: 'number', group: G_EXPORT, describe: 'Export worker threads [default: 1]' },
  'queue-size': { type: 'number', group: G_EXPORT, describe: 'Spans queued for export at most; beyond, dropped and counted (OTEL_BSP_MAX_QUEUE_SIZE) [default: 32768]' },
  'batch-size': { type: 'number', group: G_EXPORT, describe: 'Spans per export request at most (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) [default: 2048]' },
  'batch-delay': { type: 'string', group: G_EXPORT, describe: 'Longest wait before a partial batch is sent (OTEL_BSP_SCHEDULE_DELAY) [default: 500ms]' },
  'ot-tracer-config': { alias: 'C', type: 'string', group: G_EXPORT, process: true, describe: 'Configuration file, YAML or JSON, keyed by these long option names' },
  debug: { alias: 'd', type: 'string', group: G_PROC, process: true, describe: 'Log level: fatal, error, warn, info, debug, trace (or 0, 1, 2) [default: info]' },
  logfile: { alias: 'l', type: 'string', group: G_PROC, process: true, describe: 'Log to [MODE:]FILE; MODE a (append) or w (truncate), capitals for line-buffered [default: stdout]' },
  'log-format': { type: 'string', group: G_PROC, process: true, describe: 'json or pretty [default: pretty on a terminal, json otherwise]' },
  daemonize: { alias: 'D', type: 'boolean', group: G_PROC, process: true, describe: 'Run in the background, detached' },
  supervise: { type: 'boolean', group: G_PROC, process: true, describe: 'Run the agent under a small parent that restarts it whenever it exits (--no-supervise: never) [default: when launched by HAProxy]' },
  pidfile: { alias: 'F', type: 'string', group: G_PROC, process: true, describe: 'Write the process id to this file once listening' },
  'monitor-interval': { alias: 'i', type: 'string', group: G_PROC, describe: 'Period of the statistics log line (0 = off) [default: 5s]' },
  runtime: { alias: 'r', type: 'string', group: G_PROC, describe: 'Stop by itself after this long (0 = unlimited) [default: 0]' },
  'shutdown-timeout': { type: 'string', group: G_PROC, describe: 'Deadline of a graceful stop (in-flight frames, open trees, export flush) [default: 10s]' },
  'metrics-address': { type: 'string', group: G_METRICS, describe: 'Serve /metrics (Prometheus), /healthz and /readyz on [host:]port (a bare port is 127.0.0.1:port) or unix:/path [default: off]' },
  'ready-export-failure-threshold': { type: 'string', group: G_METRICS, describe: '/readyz fails once exports have failed without a success for this long [default: 60s]' },
  ...Object.fromEntries(
    Object.entries(LOG_INTAKE_OPTIONS).map(([k, d]): [string, OptionSpec] => [k, { type: k === 'log-intake' ? 'array' : 'number', group: G_LOG, describe: d }]),
  ),
  'ot-tracer-plugin': { alias: 'T', type: 'string', group: G_PROC, process: true, describe: 'Accepted for compatibility; has no meaning here (export is built in)' },
  'libev-backend': { alias: 'B', type: 'string', group: G_PROC, process: true, describe: 'Accepted for compatibility; has no meaning here (Node.js has its own event loop)' },
  check: { type: 'boolean', group: G_PROC, process: true, describe: 'Check the configuration (values, config file, addresses, files, exporter settings) without serving; exit 0 if valid, 2 if not' },
  help: { alias: 'h', type: 'boolean', group: G_PROC, process: true, describe: 'Show this help' },
  version: { alias: 'V', type: 'boolean', group: G_PROC, process: true, describe: 'Show the version' },
  'print-share-dir': { type: 'boolean', group: G_PROC, process: true, describe: 'Print the directory of the shipped haproxy/ and contrib/ files, and exit' },
}

export interface CliResult {
  /** check: --check, validate and exit (see preflight.ts). */
  action: 'run' | 'check' | 'help' | 'version' | 'print-share-dir'
  /** Help, version or directory text, for those actions. */
  text: string
  config: Config
  log: LogOptions
  daemonize: boolean
  /** --supervise / --no-supervise; null: decided by who launched us (supervisor.ts). */
  supervise: boolean | null
  pidfile: string | null
  /** Lines to log once at start (options accepted but meaningless here). */
  warnings: string[]
}

type Env = Record<string, string | undefined>
type Values = Record<string, unknown>

export interface CliIo {
  env: Env
  /** Whether stdout is a terminal (pretty logs by default). */
  isTTY: boolean
  /** Whether stderr is a terminal (where logs go while the console exporter has stdout). */
  stderrIsTTY?: boolean
  readFile?: (path: string) => string
}

function buildParser(argv: string[]) {
  let y = yargs(argv)
    .scriptName('spoa-tracer')
    .usage('spoa-tracer [OPTION]...\n\nHAProxy SPOE tracing agent: the spoa-opentracing message grammar in, OpenTelemetry span trees out.')
    .strict()
    .help(false)
    .version(false)
    .exitProcess(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    // Values stay strings: the option table validates them, with messages that name the option.
    .parserConfiguration({
      'camel-case-expansion': false,
      'strip-aliased': true,
      'duplicate-arguments-array': true,
      'parse-numbers': false,
      'parse-positional-numbers': false,
    })
    .fail((msg, err) => {
      throw err ?? new ConfigError('', msg)
    })
  for (const [name, o] of Object.entries(OPTIONS)) {
    // Numbers are declared as strings so that "eighty" reaches the validation, not NaN.
    const type = o.type === 'number' ? 'string' : o.type
    y = y.option(name, { alias: o.alias, type, describe: o.describe, group: o.group, requiresArg: o.type !== 'boolean' })
  }
  return y
}

export async function parseCli(argv: string[], io: CliIo): Promise<CliResult> {
  const parser = buildParser(argv)
  const raw = parser.parseSync() as Values
  const cli: Values = {}
  for (const name of Object.keys(OPTIONS)) if (raw[name] !== undefined) cli[name] = raw[name]

  const result: CliResult = {
    action: 'run',
    text: '',
    config: DEFAULT_CONFIG,
    log: { level: 'info', format: io.isTTY ? 'pretty' : 'json', file: null },
    daemonize: false,
    supervise: null,
    pidfile: null,
    warnings: [],
  }
  if (cli.help) return { ...result, action: 'help', text: await parser.getHelp() }
  if (cli.version) return { ...result, action: 'version', text: `spoa-tracer ${VERSION}` }
  if (cli['print-share-dir']) return { ...result, action: 'print-share-dir', text: PACKAGE_DIR }

  // Every stage runs even after a bad value, so that one run reports every problem.
  const problems = new ProblemList()
  let fileValues: Values = {}
  const file = cli['ot-tracer-config']
  if (typeof file === 'string') fileValues = problems.attempt(() => loadConfigFile(file, io.readFile ?? ((p) => readFileSync(p, 'utf8')))) ?? {}

  let config = structuredClone(DEFAULT_CONFIG)
  applyEach(config, fileValues, (k) => `${file} key "${k}"`, problems)
  config.export = problems.attempt(() => exportConfigFromEnv(io.env, config.export)) ?? config.export
  config.tracing = problems.attempt(() => tracingConfigFromEnv(io.env, config.tracing)) ?? config.tracing
  config.spanLimits = problems.attempt(() => spanLimitsFromEnv(io.env, config.spanLimits)) ?? config.spanLimits
  applyEach(config, cli, (k) => `--${k}`, problems)
  // Checks across options only on values that were each valid: no echo of an earlier problem.
  if (problems.empty) config = problems.attempt(() => validateConfig(config)) ?? config

  result.config = config
  result.daemonize = cli.daemonize === true
  if (typeof cli.supervise === 'boolean') result.supervise = cli.supervise
  result.pidfile = typeof cli.pidfile === 'string' ? cli.pidfile : null
  if (cli.check === true) result.action = 'check'
  if (cli.debug !== undefined) result.log.level = problems.attempt(() => parseLogLevel(cli.debug as string)) ?? result.log.level
  if (cli.logfile !== undefined) {
    result.log.file = problems.attempt(() => parseLogFile(String(cli.logfile))) ?? null
    result.log.format = 'json'
  } else if (config.export.exporter === 'console') {
    // The console exporter prints traces on stdout: logs must not land in them.
    result.log.stream = 'stderr'
    result.log.format = io.stderrIsTTY === true ? 'pretty' : 'json'
  }
  if (cli['log-format'] !== undefined) {
    result.log.format = problems.attempt(() => oneOf('--log-format', cli['log-format'], ['json', 'pretty'] as const)) ?? result.log.format
  }
  problems.throwIfAny()
  if (cli['ot-tracer-plugin'] !== undefined) {
    result.warnings.push('-T/--ot-tracer-plugin is ignored: spoa-tracer exports with OpenTelemetry itself (see --exporter)')
  }
  if (cli['libev-backend'] !== undefined) {
    result.warnings.push('-B/--libev-backend is ignored: Node.js runs its own event loop')
  }
  return result
}

/** Reads a YAML or JSON config file into option values; unknown keys are errors. */
export function loadConfigFile(path: string, read: (p: string) => string): Values {
  let text: string
  try {
    text = read(path)
  } catch (e) {
    throw new ConfigError('--ot-tracer-config', `cannot read ${path}: ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text)
  } catch (e) {
    throw new ConfigError('--ot-tracer-config', `${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('--ot-tracer-config', `${path}: expected a mapping of option names to values`)
  for (const key of Object.keys(doc)) {
    const spec = OPTIONS[key]
    if (!spec || spec.process) {
      throw new ConfigError('--ot-tracer-config', `${path}: unknown key "${key}" (keys are the long option names, e.g. exporter, endpoint, num-workers)`)
    }
  }
  return doc as Values
}

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  const s = String(v).trim().toLowerCase()
  if (!(allowed as readonly string[]).includes(s)) throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${String(v)}"`)
  return s as T
}

function integer(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof v === 'number' ? v : Number(String(v).trim())
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `expected an integer from ${min} to ${max}, got "${String(v)}"`)
  return n
}

function duration(name: string, v: unknown): number {
  const ms = parseDuration(typeof v === 'number' ? v : String(v))
  if (ms === null) throw new ConfigError(name, `expected ${DURATION_HELP}, got "${String(v)}"`)
  return ms
}

function keyValues(name: string, v: unknown, secret = false): Record<string, string> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]))
  }
  return parseKeyValueList(name, String(v), secret)
}

/** Each key on its own, so that one bad value does not hide the next: every problem is recorded. */
function applyEach(c: Config, values: Values, label: (key: string) => string, problems: ProblemList): void {
  for (const [key, v] of Object.entries(values)) problems.attempt(() => applyValues(c, { [key]: v }, label))
}

function applyValues(c: Config, values: Values, label: (key: string) => string): void {
  if (values.address !== undefined || values.port !== undefined) c.listen = listenAddress(c, values, label)
  for (const [key, v] of Object.entries(values)) {
    const name = label(key)
    switch (key) {
      case 'address':
      case 'port':
        break // together, below: -p may come before or after -a
      case 'connection-backlog':
        c.backlog = integer(name, v, 1, 65535)
        break
      case 'unix-mode': {
        const m = /^0?[0-7]{3}$/.exec(String(v).trim())
        if (!m) throw new ConfigError(name, `expected octal permissions like 660, got "${String(v)}"`)
        c.socketMode = parseInt(String(v).trim(), 8)
        break
      }
      case 'unix-owner':
        c.socketOwner = ownerFrom(name, String(v))
        break
      case 'capability': {
        const list = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((x) => x.trim().toLowerCase()).filter(Boolean)
        for (const cap of list) {
          if (!(CAPABILITIES as readonly string[]).includes(cap)) throw new ConfigError(name, `expected ${CAPABILITIES.join(', ')}; got "${cap}"`)
        }
        c.capabilities = [...new Set(list)] as Capability[]
        break
      }
      case 'max-frame-size':
        c.maxFrameSize = integer(name, v, 256, 1 << 24)
        break
      case 'max-connections':
        c.maxConnections = integer(name, v, 0)
        break
      case 'hello-timeout':
        c.timeouts = { ...c.timeouts, helloMs: duration(name, v) }
        break
      case 'frame-timeout':
        c.timeouts = { ...c.timeouts, frameMs: duration(name, v) }
        break
      case 'idle-timeout':
        c.timeouts = { ...c.timeouts, idleMs: duration(name, v) }
        break
      case 'processing-delay':
        c.processingDelayMs = duration(name, v)
        break
      case 'listen-retry':
        c.listenRetryMs = duration(name, v)
        break
      case 'ot-timeout-msg':
        c.tree = { ...c.tree, timeoutMessage: String(v) }
        break
      case 'tree-ttl':
        c.tree = { ...c.tree, idleTtlMs: duration(name, v) }
        break
      case 'max-trees':
        c.tree = { ...c.tree, maxTrees: integer(name, v, 1) }
        break
      case 'max-spans-per-tree':
        c.tree = { ...c.tree, maxSpansPerTree: integer(name, v, 1) }
        break
      case 'max-attributes':
        c.spanLimits = { ...c.spanLimits, maxAttributes: integer(name, v, 0) }
        break
      case 'max-attribute-length':
        c.spanLimits = { ...c.spanLimits, maxAttributeLength: integer(name, v, 0) }
        break
      case 'max-events':
        c.spanLimits = { ...c.spanLimits, maxEvents: integer(name, v, 0) }
        break
      case 'service-name':
        c.export.resource['service.name'] = String(v)
        break
      case 'resource-attributes':
        Object.assign(c.export.resource, keyValues(name, v))
        break
      case 'propagators':
        c.tracing = { ...c.tracing, propagators: propagatorsFrom(name, String(v)) }
        break
      case 'sampler':
        c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, name: samplerFrom(name, String(v)) } }
        break
      case 'sampler-arg':
        c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, ratio: ratioFrom(name, v as string) } }
        break
      case 'sampler-rate-limit':
        c.tracing = { ...c.tracing, sampler: { ...c.tracing.sampler, rateLimit: integer(name, v, 0) } }
        break
      case 'exporter':
        c.export.exporter = oneOf(name, v, EXPORTERS)
        break
      case 'endpoint':
        c.export.endpoint = endpointToTracesUrl(name, String(v))
        break
      case 'protocol':
        c.export.protocol = oneOf(name, v, PROTOCOLS)
        break
      case 'headers':
        Object.assign(c.export.headers, checkHeaders(name, keyValues(name, v, true)))
        break
      case 'export-timeout':
        c.export.timeoutMs = Math.max(1, duration(name, v))
        break
      case 'output-file':
        c.export.file = String(v)
        break
      case 'num-workers':
        c.export.numWorkers = integer(name, v, 1, 64)
        break
      case 'queue-size':
        c.export.maxQueueSize = integer(name, v, 1)
        break
      case 'batch-size':
        c.export.maxBatchSize = integer(name, v, 1)
        break
      case 'batch-delay':
        c.export.scheduledDelayMs = duration(name, v)
        break
      case 'monitor-interval':
        c.monitorIntervalMs = duration(name, v)
        break
      case 'runtime':
        c.runtimeMs = duration(name, v)
        break
      case 'shutdown-timeout':
        c.shutdownTimeoutMs = duration(name, v)
        break
      case 'metrics-address':
        c.metricsAddress = parseMetricsAddress(name, v)
        break
      case 'ready-export-failure-threshold':
        c.readyExportFailureThresholdMs = duration(name, v)
        break
      default:
        if (applyLogIntakeOption(c.logIntake, key, v, name)) break
        if (!OPTIONS[key]?.process) throw new ConfigError(name, 'unknown option')
    }
  }
}

/** user[:group], by name (from /etc/passwd and /etc/group) or number. */
function ownerFrom(option: string, spec: string): { uid: number; gid: number } {
  const [user, group] = spec.trim().split(':') as [string, string | undefined]
  const lookup = (file: string, name: string, gidField: boolean): { id: number; gid: number } | null => {
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      return null
    }
    for (const line of text.split('\n')) {
      const f = line.split(':')
      if (f[0] === name && f[2] !== undefined) return { id: Number(f[2]), gid: Number(gidField ? f[3] : f[2]) }
    }
    return null
  }
  const u = /^\d+$/.test(user) ? { id: Number(user), gid: Number.NaN } : lookup('/etc/passwd', user, true)
  if (u === null) throw new ConfigError(option, `unknown user "${user}"`)
  let gid = u.gid
  if (group !== undefined && group !== '') {
    const g = /^\d+$/.test(group) ? { id: Number(group), gid: 0 } : lookup('/etc/group', group, false)
    if (g === null) throw new ConfigError(option, `unknown group "${group}"`)
    gid = g.id
  }
  if (!Number.isInteger(gid)) throw new ConfigError(option, `a numeric user needs a group: ${user}:GROUP`)
  return { uid: u.id, gid }
}

/** -a and -p: a TCP address and port, or a unix socket (where -p has no meaning). */
function listenAddress(c: Config, values: Values, label: (key: string) => string): Config['listen'] {
  const port = values.port !== undefined ? integer(label('port'), values.port, 0, 65535) : 'port' in c.listen ? c.listen.port : 12345
  if (values.address === undefined) return 'port' in c.listen ? { host: c.listen.host, port } : c.listen
  const s = String(values.address).trim()
  if (s.startsWith('unix:')) {
    if (s.length <= 5) throw new ConfigError(label('address'), 'expected unix:/path/to/socket')
    return { path: s.slice(5) }
  }
  if (s === '') throw new ConfigError(label('address'), 'expected an address or unix:/path')
  return { host: s, port }
}
