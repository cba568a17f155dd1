// The option table (src/daemon/options.ts) as the one place an option is
// defined: every Config option means the same from the command line, from a
// config file and from each OTEL_* variable it names; --help shows what the
// table says; a repeated option keeps its last value unless it is a list.

import t from 'tap'
import { parseCli } from '../../src/daemon/cli.js'
import { isConfigOption, OPTION_TABLE } from '../../src/daemon/options.js'

type Env = Record<string, string>

const parse = (argv: string[], env: Env = {}, files: Record<string, string> = {}) =>
  parseCli(argv, {
    env,
    isTTY: false,
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
  })

/**
 * A value for each Config option (a new option needs one here). `env`: the
 * same setting in a variable's own syntax where it differs; `context`:
 * variables both sides need (the ratio applies to a ratio sampler only).
 */
const SAMPLES: Record<string, { value: string; env?: Env; context?: Env }> = {
  address: { value: '0.0.0.0' },
  port: { value: '9000' },
  'unix-mode': { value: '600' },
  'unix-owner': { value: '0:0' },
  'connection-backlog': { value: '64' },
  capability: { value: 'async' },
  'max-frame-size': { value: '8192' },
  'max-connections': { value: '5' },
  'hello-timeout': { value: '1s' },
  'frame-timeout': { value: '2s' },
  'idle-timeout': { value: '3s' },
  'listen-retry': { value: '4s' },
  'processing-delay': { value: '5ms' },
  'ot-timeout-msg': { value: 'gone' },
  'tree-ttl': { value: '1m' },
  'max-trees': { value: '10' },
  'max-spans-per-tree': { value: '20' },
  'max-attributes': { value: '3' },
  'max-attribute-length': { value: '64' },
  'max-events': { value: '1' },
  'service-name': { value: 'edge' },
  'resource-attributes': { value: 'env=prod' },
  propagators: { value: 'b3' },
  sampler: { value: 'traceidratio' },
  'sampler-arg': { value: '0.25', context: { OTEL_TRACES_SAMPLER: 'traceidratio' } },
  'sampler-rate-limit': { value: '100' },
  exporter: { value: 'file' },
  endpoint: { value: 'http://c:4318', env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' } },
  protocol: { value: 'http/json' },
  headers: { value: 'x-tenant=a' },
  'export-timeout': { value: '2500' },
  'output-file': { value: 'x.jsonl' },
  'num-workers': { value: '3' },
  'queue-size': { value: '4096' },
  'batch-size': { value: '100' },
  'batch-delay': { value: '250' },
  'monitor-interval': { value: '10s' },
  runtime: { value: '1s' },
  'shutdown-timeout': { value: '4s' },
  'metrics-address': { value: '9464' },
  'ready-export-failure-threshold': { value: '5s' },
  'log-intake': { value: 'udp://127.0.0.1:5140' },
  'log-max-record': { value: '8192' },
  'log-max-connections': { value: '8' },
  'log-receive-buffer': { value: '8192' },
  'log-read-pause': { value: '20ms' },
  'cpu-sched': { value: 'idle' },
}

const configOptions = Object.entries(OPTION_TABLE).filter(([, o]) => isConfigOption(o))
const processOptions = Object.entries(OPTION_TABLE).filter(([, o]) => !isConfigOption(o))

t.test('the table: short names used once, a sample for every Config option', async (t) => {
  const aliases = Object.values(OPTION_TABLE).flatMap((o) => (o.alias !== undefined ? [o.alias] : []))
  t.equal(new Set(aliases).size, aliases.length, 'no short name twice')
  t.same(configOptions.map(([name]) => name).sort(), Object.keys(SAMPLES).sort(), 'every Config option has a sample here')
})

t.test('each Config option: the flag, the config-file key and its OTEL_* variables set the same', async (t) => {
  for (const [name, o] of configOptions) {
    const s = SAMPLES[name]!
    const context = s.context ?? {}
    const base = (await parse([], context)).config
    const flag = (await parse([`--${name}`, s.value], context)).config
    t.notSame(flag, base, `--${name} ${s.value} changes the configuration`)
    const file = (await parse(['-C', 'a.yml'], context, { 'a.yml': `${name}: ${JSON.stringify(s.value)}\n` })).config
    t.same(file, flag, `config-file key "${name}" means what --${name} means`)
    for (const v of o.env ?? []) {
      const env = (await parse([], { ...context, [v]: s.env?.[v] ?? s.value })).config
      t.same(env, flag, `${v} means what --${name} means`)
    }
  }
})

t.test('process options are command line only', async (t) => {
  for (const [name] of processOptions) {
    await t.rejects(parse(['-C', 'a.yml'], {}, { 'a.yml': `${name}: x\n` }), { message: new RegExp(`^--ot-tracer-config: a.yml: unknown key "${name}"`) }, name)
  }
  for (const key of ['toString', '__proto__', 'constructor']) {
    await t.rejects(parse(['-C', 'a.json'], {}, { 'a.json': `{"${key}": 1}` }), { message: new RegExp(`unknown key "${key}"`) }, `not an option: ${key}`)
  }
})

t.test('--help: every option, its short name and its variables, from the table', async (t) => {
  const help = (await parse(['--help'])).text
  for (const [name, o] of Object.entries(OPTION_TABLE)) {
    t.match(help, o.alias !== undefined ? `-${o.alias}, --${name}` : `--${name}`, name)
    for (const v of o.env ?? []) t.match(help, v, `--${name}: ${v}`)
    if (o.default !== undefined) t.match(help, '[default:', `--${name}: its default`)
  }
  t.match(help, /--port\s+TCP port to listen on \[default: 12345\]/)
})

t.test('given twice: the last value counts', async (t) => {
  t.same((await parse(['-p', '1', '-p', '2'])).config.listen, { host: '127.0.0.1', port: 2 })
  t.same((await parse(['-p', 'x', '--port', '2'])).config.listen, { host: '127.0.0.1', port: 2 }, 'an earlier value does not count, even a bad one')
  t.equal((await parse(['--exporter', 'none', '--exporter', 'file'])).config.export.exporter, 'file')
  t.same((await parse(['-a', 'unix:/run/a.sock', '-a', '127.0.0.2'])).config.listen, { host: '127.0.0.2', port: 12345 })
  t.equal((await parse(['-d', 'error', '-d', 'trace'])).log.level, 'trace')
  const files = { 'a.yml': 'num-workers: 2\n', 'b.yml': 'num-workers: 3\n' }
  t.equal((await parse(['-C', 'a.yml', '-C', 'b.yml'], {}, files)).config.export.numWorkers, 3, 'one config file: the last')
  t.equal((await parse(['-D', '-D'])).daemonize, true)
  t.equal((await parse(['--no-supervise', '--supervise'])).supervise, true)
  t.equal((await parse(['--supervise', '--no-supervise'])).supervise, false)
})

t.test('given twice: a list adds up', async (t) => {
  t.same((await parse(['-c', 'async', '-c', 'fragmentation'])).config.capabilities, ['async', 'fragmentation'])
  t.same((await parse(['-c', 'async', 'fragmentation'])).config.capabilities, ['async', 'fragmentation'], '-c takes the values that follow it')
  t.same((await parse(['--headers', 'a=1', '--headers', 'b=2'])).config.export.headers, { a: '1', b: '2' })
  t.same((await parse(['--resource-attributes', 'a=1', '--resource-attributes', 'b=2'])).config.export.resource, { 'service.name': 'haproxy', a: '1', b: '2' })
  t.same((await parse(['--propagators', 'b3', '--propagators', 'jaeger'])).config.tracing.propagators, ['b3', 'jaeger'])
  t.same(
    (await parse(['--log-intake', 'udp://127.0.0.1:1', '--log-intake', 'tcp://127.0.0.1:2'])).config.logIntake.addresses,
    [{ transport: 'udp', host: '127.0.0.1', port: 1 }, { transport: 'tcp', host: '127.0.0.1', port: 2 }],
  )
  await t.rejects(parse(['--headers', 'a=1', '--headers', 'oops']), { message: '--headers: expected key=value pairs separated by commas, got entry 2' })
})
