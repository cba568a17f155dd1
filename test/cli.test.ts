// Command-line parsing as a pure function: argv + environment + files in, Config out.

import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { parseCli } from '../src/daemon/cli.js'
import { DEFAULT_CONFIG } from '../src/daemon/config.js'

const parse = (argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}) =>
  parseCli(argv, {
    env,
    isTTY: false,
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
  })

t.test('defaults', async (t) => {
  const r = await parse([])
  t.equal(r.action, 'run')
  t.same(r.config, DEFAULT_CONFIG)
  t.same(r.config.listen, { host: '127.0.0.1', port: 12345 }, 'loopback by default (the C agent used 0.0.0.0)')
  t.same(r.log, { level: 'info', format: 'json', file: null })
  t.equal(r.daemonize, false)
})

t.test('the C agent options, short and long', async (t) => {
  const r = await parse([
    '-a', '0.0.0.0', '-p', '9000', '-b', '64', '-c', 'pipelining', '-c', 'async,fragmentation',
    '-m', '8192', '-n', '3', '-o', 'gone', '-t', '2ms', '-r', '1.5s', '-i', '10s', '-d', '1',
    '-l', 'W:/tmp/agent.log', '-F', '/tmp/agent.pid', '-D',
  ])
  const c = r.config
  t.same(c.listen, { host: '0.0.0.0', port: 9000 })
  t.equal(c.backlog, 64)
  t.same(c.capabilities, ['pipelining', 'async', 'fragmentation'])
  t.equal(c.maxFrameSize, 8192)
  t.equal(c.export.numWorkers, 3)
  t.equal(c.tree.timeoutMessage, 'gone')
  t.equal(c.processingDelayMs, 2)
  t.equal(c.runtimeMs, 1500)
  t.equal(c.monitorIntervalMs, 10_000)
  t.equal(r.log.level, 'debug')
  t.same(r.log.file, { path: '/tmp/agent.log', mode: 'w', lineBuffered: true })
  t.equal(r.pidfile, '/tmp/agent.pid')
  t.equal(r.daemonize, true)
  const long = await parse(['--address', 'unix:/run/spoa.sock', '--port', '1', '--ot-timeout-msg=x', '--logfile', '/tmp/a.log'])
  t.same(long.config.listen, { path: '/run/spoa.sock' }, 'unix socket')
  t.same(long.log.file, { path: '/tmp/a.log', mode: 'a', lineBuffered: false }, 'append, buffered by default')
})

t.test('times take the C agent units', async (t) => {
  const cases: Array<[string, number]> = [['250', 250], ['500us', 0.5], ['3ms', 3], ['2s', 2000], ['1m', 60_000], ['1h', 3_600_000], ['1d', 86_400_000], ['0', 0]]
  for (const [v, ms] of cases) t.equal((await parse(['-r', v])).config.runtimeMs, ms, v)
})

t.test('new options', async (t) => {
  const r = await parse([
    '--exporter', 'file', '--output-file', '/tmp/s.jsonl', '--protocol', 'http/json',
    '--endpoint', 'http://c:4318', '--headers', 'a=1,b=2', '--export-timeout', '3s',
    '--service-name', 'edge', '--resource-attributes', 'env=prod', '--queue-size', '1000',
    '--batch-size', '100', '--batch-delay', '50ms', '--tree-ttl', '1m', '--max-trees', '10',
    '--max-spans-per-tree', '20', '--max-connections', '5', '--hello-timeout', '1s',
    '--frame-timeout', '2s', '--idle-timeout', '3s', '--shutdown-timeout', '4s', '--log-format', 'pretty',
  ])
  const c = r.config
  t.same(
    [c.export.exporter, c.export.file, c.export.protocol, c.export.endpoint, c.export.headers, c.export.timeoutMs],
    ['file', '/tmp/s.jsonl', 'http/json', 'http://c:4318/v1/traces', { a: '1', b: '2' }, 3000],
  )
  t.same(c.export.resource, { 'service.name': 'edge', env: 'prod' })
  t.same([c.export.maxQueueSize, c.export.maxBatchSize, c.export.scheduledDelayMs], [1000, 100, 50])
  t.same([c.tree.idleTtlMs, c.tree.maxTrees, c.tree.maxSpansPerTree], [60_000, 10, 20])
  t.same([c.maxConnections, c.timeouts.helloMs, c.timeouts.frameMs, c.timeouts.idleMs, c.shutdownTimeoutMs], [5, 1000, 2000, 3000, 4000])
  t.equal(r.log.format, 'pretty')
  t.equal((await parse(['--endpoint', 'https://x/custom/v1/traces'])).config.export.endpoint, 'https://x/custom/v1/traces')
})

t.test('-T and -B are accepted with a warning', async (t) => {
  const r = await parse(['-T', '/usr/lib/libjaeger.so', '-B', 'epoll'])
  t.equal(r.warnings.length, 2)
  t.match(r.warnings[0], /ot-tracer-plugin is ignored/)
  t.match(r.warnings[1], /libev-backend is ignored/)
})

t.test('precedence: flags > OTEL_* > config file > defaults', async (t) => {
  const files = {
    'agent.yml': 'exporter: file\nendpoint: http://from-file:4318\nservice-name: from-file\nnum-workers: 2\nport: 7000\nresource-attributes:\n  team: edge\n',
  }
  const fileOnly = await parse(['-C', 'agent.yml'], {}, files)
  t.same(
    [fileOnly.config.export.exporter, fileOnly.config.export.endpoint, fileOnly.config.export.resource, fileOnly.config.export.numWorkers, fileOnly.config.listen],
    ['file', 'http://from-file:4318/v1/traces', { 'service.name': 'from-file', team: 'edge' }, 2, { host: '127.0.0.1', port: 7000 }],
  )
  const env = { OTEL_SERVICE_NAME: 'from-env', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://from-env:4318', OTEL_TRACES_EXPORTER: 'otlp' }
  const envOverFile = await parse(['-C', 'agent.yml'], env, files)
  t.same(
    [envOverFile.config.export.exporter, envOverFile.config.export.endpoint, envOverFile.config.export.resource['service.name']],
    ['otlp', 'http://from-env:4318/v1/traces', 'from-env'],
  )
  const flags = await parse(['-C', 'agent.yml', '--service-name', 'from-flag', '--endpoint', 'http://from-flag:1', '-n', '4'], env, files)
  t.same(
    [flags.config.export.resource['service.name'], flags.config.export.endpoint, flags.config.export.numWorkers],
    ['from-flag', 'http://from-flag:1/v1/traces', 4],
  )
  const json = await parse(['-C', 'agent.json'], {}, { 'agent.json': '{"exporter": "none", "max-trees": 5}' })
  t.same([json.config.export.exporter, json.config.tree.maxTrees], ['none', 5])
})

t.test('bad values: one message naming the option and the accepted values', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['-p', '70000'], /^--port: expected an integer from 0 to 65535, got "70000"$/],
    [['-c', 'turbo'], /^--capability: expected pipelining, async, fragmentation; got "turbo"$/],
    [['-m', '100'], /^--max-frame-size: expected an integer from 256 to/],
    [['-n', '65'], /^--num-workers: expected an integer from 0 to 64/],
    [['-r', 'later'], /^--runtime: expected a time: a number with an optional unit us, ms, s, m, h or d/],
    [['-d', 'loud'], /^--debug: expected a level \(fatal, error, warn, info, debug, trace, silent\) or 0, 1, 2/],
    [['--exporter', 'jaeger'], /^--exporter: expected one of otlp, console, file, none/],
    [['--protocol', 'grpc'], /^--protocol: expected one of http\/protobuf, http\/json/],
    [['--endpoint', 'collector:4318'], /^--endpoint: expected http:\/\/ or https:\/\//],
    [['--headers', 'oops'], /^--headers: expected key=value pairs/],
    [['--log-format', 'xml'], /^--log-format: expected one of json, pretty/],
    [['--log-read-pause', '5s'], /^--log-read-pause: 5s is too long: at most 1s/],
    [['--log-read-pause', 'soon'], /^--log-read-pause: expected a time/],
    [['--cpu-sched', 'low'], /^--cpu-sched: expected one of normal, idle, tracing-idle, got "low"/],
    [['-a', 'unix:'], /^--address: expected unix:\/path\/to\/socket$/],
    [['--nope'], /Unknown argument: nope/],
    [['-p'], /Not enough arguments following: p/],
    [['-C', 'missing.yml'], /^--ot-tracer-config: cannot read missing.yml/],
  ]
  for (const [argv, msg] of bad) await t.rejects(parse(argv), { message: msg }, argv.join(' '))
  await t.rejects(parse(['-C', 'x.yml'], {}, { 'x.yml': 'port: [1' }), { message: /x.yml is not valid YAML/ })
  await t.rejects(parse(['-C', 'x.yml'], {}, { 'x.yml': 'daemonize: true' }), { message: /unknown key "daemonize"/ })
  await t.rejects(parse(['-C', 'x.yml'], {}, { 'x.yml': 'prot: 1' }), { message: /unknown key "prot"/ })
  await t.rejects(parse(['-C', 'x.yml'], {}, { 'x.yml': 'port: 99999' }), { message: /^x.yml key "port": expected an integer/ })
  await t.rejects(parse([], { OTEL_BSP_MAX_QUEUE_SIZE: 'lots' }), { message: /^OTEL_BSP_MAX_QUEUE_SIZE: expected an integer/ })
})

t.test('help and version', async (t) => {
  const h = await parse(['--help'])
  t.equal(h.action, 'help')
  for (const opt of ['--address', '--port', '--capability', '--daemonize', '--debug', '--pidfile', '--monitor-interval', '--logfile', '--max-frame-size', '--num-workers', '--runtime', '--processing-delay', '--ot-timeout-msg', '--ot-tracer-config', '--version', '--exporter', '--endpoint']) {
    t.match(h.text, opt, `help mentions ${opt}`)
  }
  const v = await parse(['-V'])
  t.equal(v.action, 'version')
  t.match(v.text, /^spoa-tracer \d+\.\d+\.\d+/)
})

t.test('propagation and sampling options, and their OTEL_* variables', async (t) => {
  const d = await parse([])
  t.same(d.config.tracing, { propagators: ['tracecontext', 'baggage'], sampler: { name: 'parentbased_always_on', ratio: 1, rateLimit: 0 } })
  const env = await parse([], { OTEL_PROPAGATORS: 'b3multi,jaeger', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })
  t.same(env.config.tracing, { propagators: ['b3multi', 'jaeger'], sampler: { name: 'parentbased_traceidratio', ratio: 0.25, rateLimit: 0 } })
  const flags = await parse(['--propagators', 'tracecontext,b3', '--sampler', 'traceidratio', '--sampler-arg', '0.1', '--sampler-rate-limit', '100'], {
    OTEL_TRACES_SAMPLER: 'always_off',
  })
  t.same(flags.config.tracing, { propagators: ['tracecontext', 'b3'], sampler: { name: 'traceidratio', ratio: 0.1, rateLimit: 100 } })
  t.same((await parse(['--propagators', 'none'])).config.tracing.propagators, [])
  await t.rejects(parse(['--propagators', 'xray']), { message: /^--propagators: unknown propagator "xray"/ })
  await t.rejects(parse(['--sampler', 'sometimes']), { message: /^--sampler: expected one of always_on/ })
  await t.rejects(parse(['--sampler-arg', '2']), { message: /^--sampler-arg: expected a ratio from 0 to 1/ })
  await t.rejects(parse([], { OTEL_TRACES_SAMPLER: 'nope' }), { message: /^OTEL_TRACES_SAMPLER: expected one of/ })
})

t.test('span limits: options and OTEL_SPAN_* / OTEL_ATTRIBUTE_* variables', async (t) => {
  t.same((await parse([])).config.spanLimits, { maxAttributes: 128, maxEvents: 128, maxLinks: 128, maxAttributeLength: 4096 })
  const env = await parse([], { OTEL_ATTRIBUTE_COUNT_LIMIT: '10', OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '64', OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '999', OTEL_SPAN_EVENT_COUNT_LIMIT: '5', OTEL_SPAN_LINK_COUNT_LIMIT: '0' })
  t.same(env.config.spanLimits, { maxAttributes: 10, maxEvents: 5, maxLinks: 0, maxAttributeLength: 64 }, 'span-specific variables win')
  const flags = await parse(['--max-attributes', '3', '--max-attribute-length', '0', '--max-events', '1'], { OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '50' })
  t.same(flags.config.spanLimits, { maxAttributes: 3, maxEvents: 1, maxLinks: 128, maxAttributeLength: 0 })
  await t.rejects(parse([], { OTEL_SPAN_EVENT_COUNT_LIMIT: '-1' }), { message: /^OTEL_SPAN_EVENT_COUNT_LIMIT: expected an integer >= 0/ })
})

t.test('unix socket permissions and owner', async (t) => {
  const r = await parse(['-a', 'unix:/run/spoa.sock', '--unix-mode', '660', '--unix-owner', 'nobody:nogroup'])
  t.same([r.config.listen, r.config.socketMode, r.config.socketOwner], [{ path: '/run/spoa.sock' }, 0o660, { uid: 65534, gid: 65534 }])
  t.same((await parse(['--unix-owner', '1000:1001'])).config.socketOwner, { uid: 1000, gid: 1001 })
  t.same((await parse(['--unix-owner', 'nobody'])).config.socketOwner, { uid: 65534, gid: 65534 }, "the user's primary group")
  await t.rejects(parse(['--unix-mode', '999']), { message: /^--unix-mode: expected octal permissions/ })
  await t.rejects(parse(['--unix-owner', 'no-such-user-x']), { message: /^--unix-owner: unknown user "no-such-user-x"/ })
  await t.rejects(parse(['--unix-owner', '1000']), { message: /a numeric user needs a group/ })
})

t.test('--print-share-dir: where the shipped haproxy/ and contrib/ files are', async (t) => {
  const r = await parse(['--print-share-dir'])
  t.equal(r.action, 'print-share-dir')
  t.equal(r.text, resolve(import.meta.dirname, '..'), 'the package directory (here the checkout)')
  t.ok(existsSync(join(r.text, 'haproxy', 'haproxy.cfg')) && existsSync(join(r.text, 'contrib', 'spoa-tracer.service')))
  t.match((await parse(['--help'])).text, '--print-share-dir')
})

t.test('--exporter console: logs go to stderr (the traces have stdout), unless a log file is given', async (t) => {
  const r = await parse(['--exporter', 'console'])
  t.same([r.log.stream, r.log.file, r.log.format], ['stderr', null, 'json'])
  const tty = await parseCli(['--exporter', 'console'], { env: {}, isTTY: false, stderrIsTTY: true, readFile: () => '' })
  t.equal(tty.log.format, 'pretty', 'pretty when stderr is a terminal')
  const env = await parse([], { OTEL_TRACES_EXPORTER: 'console' })
  t.equal(env.log.stream, 'stderr', 'also when chosen by OTEL_TRACES_EXPORTER')
  const file = await parse(['--exporter', 'console', '-l', '/tmp/x.log'])
  t.same([file.log.stream, file.log.file?.path], [undefined, '/tmp/x.log'])
  t.equal((await parse(['--exporter', 'otlp'])).log.stream, undefined, 'other exporters: stdout')
})

t.test('every problem of a run at once, one line each', async (t) => {
  const err = await parse(['--port', 'x', '--headers', 'a', '-n', '65', '-l', 'x:/tmp/a.log'], { OTEL_BSP_MAX_QUEUE_SIZE: 'lots' }).catch((e: unknown) => e)
  t.equal((err as Error).name, 'ConfigError')
  t.same(
    (err as { problems: Array<{ message: string }> }).problems.map((p) => p.message),
    [
      'OTEL_BSP_MAX_QUEUE_SIZE: expected an integer >= 1, got "lots"',
      '--port: expected an integer from 0 to 65535, got "x"',
      '--headers: expected key=value pairs separated by commas, got entry 1',
      '--num-workers: expected an integer from 0 to 64, got "65"',
      '--logfile: unknown MODE "x" in "x:/tmp/a.log"; expected [MODE:]FILE with MODE a, w, A or W',
    ],
  )
  t.equal((err as Error).message.split('\n').length, 5, 'the message: one line per problem')
})

t.test('-l MODE: a, w, A, W; anything else of one character is refused, never taken for a file name', async (t) => {
  t.same((await parse(['-l', 'w:/tmp/x.log'])).log.file, { path: '/tmp/x.log', mode: 'w', lineBuffered: false })
  t.same((await parse(['-l', './x:y.log'])).log.file, { path: './x:y.log', mode: 'a', lineBuffered: false }, 'a path that merely has a colon')
  await t.rejects(parse(['-l', 'x:/path']), { message: '--logfile: unknown MODE "x" in "x:/path"; expected [MODE:]FILE with MODE a, w, A or W' })
  await t.rejects(parse(['-l', 'a:']), { message: '--logfile: expected [MODE:]FILE with MODE a, w, A or W' })
})

t.test('--check and --listen-retry', async (t) => {
  const r = await parse(['--check', '--listen-retry', '5s'])
  t.equal(r.action, 'check')
  t.equal(r.config.listenRetryMs, 5000)
  t.equal((await parse([])).config.listenRetryMs, 0, 'no retry unless asked')
  t.equal((await parse(['-C', 'a.yml'], {}, { 'a.yml': 'listen-retry: 2s\n' })).config.listenRetryMs, 2000, 'a config-file key')
  await t.rejects(parse(['-C', 'a.yml'], {}, { 'a.yml': 'check: true\n' }), { message: /unknown key "check"/ }, 'a process option, not a file key')
})

t.test('export headers: valid HTTP, and never echoed in an error', async (t) => {
  t.same((await parse(['--headers', 'authorization=Bearer%20abc,x-scope=t1'])).config.export.headers, { authorization: 'Bearer abc', 'x-scope': 't1' })
  await t.rejects(parse(['--headers', 'authorization: Bearer s3cret']), { message: '--headers: expected key=value pairs separated by commas, got entry 1' })
  await t.rejects(parse(['--headers', 'authorization=Bearer%zzs3cret']), { message: '--headers: bad percent-encoding in entry 1' })
  await t.rejects(parse([], { OTEL_EXPORTER_OTLP_HEADERS: 'a=1,token s3cret' }), { message: 'OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas, got entry 2' })
  await t.rejects(parse(['--headers', 'bad name=1']), { message: '--headers: "bad name" is not a valid HTTP header name' })
  await t.rejects(parse(['--headers', 'x=a%0Db']), { message: '--headers: the value of header "x" has characters HTTP does not allow' })
  await t.rejects(parse(['--resource-attributes', 'team']), { message: '--resource-attributes: expected key=value pairs separated by commas, got "team"' }, 'not a secret: shown')
})

t.test('endpoint: credentials never echoed; /v1/traces goes on the path, before a query', async (t) => {
  await t.rejects(parse(['--endpoint', 'ftp://u:s3cret@c']), { message: '--endpoint: expected http:// or https://, got "ftp://***@c/"' })
  await t.rejects(parse(['--endpoint', 'http://u:s3cret@']), { message: '--endpoint: not a URL: "http://***@"' })
  await t.rejects(parse([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://u:s3cret@c' }), { message: /^OTEL_EXPORTER_OTLP_ENDPOINT: expected http:\/\/ or https:\/\/, got "ftp:\/\/\*\*\*@c\/v1\/traces"$/ })
  t.equal((await parse(['--endpoint', 'https://c:4318?api_key=k'])).config.export.endpoint, 'https://c:4318/v1/traces?api_key=k')
  t.equal((await parse(['--endpoint', 'http://u:p@c:4318/'])).config.export.endpoint, 'http://u:p@c:4318/v1/traces')
})
