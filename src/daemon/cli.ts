// Command line -> one validated Config. Pure (argv, env, files in; a result
// out), so every option is tested without starting anything.
//
// The options are declared in options.ts; yargs is built from that table
// and a config file (-C, YAML or JSON) takes the same long names as keys.
// Precedence: flags > OTEL_* environment > config file > defaults. A bad
// value is a ConfigError naming the option and what it accepts; run.ts
// prints it on one line and exits with status 2.

import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import yargs from 'yargs'
import { exportConfigFromEnv } from '../export/config.js'
import { spanLimitsFromEnv, tracingConfigFromEnv } from '../tracing/config.js'
import { ConfigError, ProblemList } from '../util/config-error.js'
import { type Config, DEFAULT_CONFIG, validateConfig } from './config.js'
import type { LogOptions } from './logger.js'
import { helpText, isConfigOption, OPTION_TABLE, OPTIONS, optionNamed } from './options.js'
import { PACKAGE_DIR, VERSION } from './version.js'

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
    // Values stay as typed: each option's own reader checks them, with messages that name the option.
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
  for (const [name, o] of Object.entries(OPTION_TABLE)) {
    y = y.option(name, { alias: o.alias, type: o.type, describe: helpText(o), group: o.group, requiresArg: o.type !== 'boolean' })
  }
  return y
}

/** The options given, by long name: a list option keeps every value, any other its last one. */
function commandLine(raw: Values): Values {
  const given: Values = {}
  for (const [name, o] of Object.entries(OPTION_TABLE)) {
    const v = raw[name]
    if (v !== undefined) given[name] = Array.isArray(v) && o.list !== true ? v[v.length - 1] : v
  }
  return given
}

export async function parseCli(argv: string[], io: CliIo): Promise<CliResult> {
  const parser = buildParser(argv)
  const cli = commandLine(parser.parseSync() as Values)

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
  if (cli.help === true) return { ...result, action: 'help', text: await parser.getHelp() }
  if (cli.version === true) return { ...result, action: 'version', text: `spoa-tracer ${VERSION}` }
  if (cli['print-share-dir'] === true) return { ...result, action: 'print-share-dir', text: PACKAGE_DIR }

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
  if (cli.debug !== undefined) result.log.level = problems.attempt(() => OPTIONS.debug.read(cli.debug, '--debug')) ?? result.log.level
  if (cli.logfile !== undefined) {
    result.log.file = problems.attempt(() => OPTIONS.logfile.read(cli.logfile, '--logfile')) ?? null
    result.log.format = 'json'
  } else if (config.export.exporter === 'console') {
    // The console exporter prints traces on stdout: logs must not land in them.
    result.log.stream = 'stderr'
    result.log.format = io.stderrIsTTY === true ? 'pretty' : 'json'
  }
  if (cli['log-format'] !== undefined) {
    result.log.format = problems.attempt(() => OPTIONS['log-format'].read(cli['log-format'], '--log-format')) ?? result.log.format
  }
  problems.throwIfAny()
  for (const [name, o] of Object.entries(OPTION_TABLE)) {
    if ('ignored' in o && o.ignored !== undefined && cli[name] !== undefined) result.warnings.push(o.ignored)
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
    if (!isConfigOption(optionNamed(key))) {
      throw new ConfigError('--ot-tracer-config', `${path}: unknown key "${key}" (keys are the long option names, e.g. exporter, endpoint, num-workers)`)
    }
  }
  return doc as Values
}

/** Each value on its own, so that one bad value does not hide the next: every problem is recorded. */
function applyEach(c: Config, values: Values, label: (key: string) => string, problems: ProblemList): void {
  for (const [key, v] of Object.entries(values)) {
    const o = optionNamed(key)
    if (isConfigOption(o)) problems.attempt(() => o.apply(c, v, label(key)))
  }
}
