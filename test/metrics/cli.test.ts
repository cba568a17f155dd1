// --metrics-address and --ready-export-failure-threshold: the forms accepted,
// the config-file keys, precedence, and one-line errors naming the option.

import t from 'tap'
import { parseCli } from '../../src/daemon/cli.js'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'

const parse = (argv: string[], files: Record<string, string> = {}) =>
  parseCli(argv, {
    env: {},
    isTTY: false,
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
  })

t.test('off by default; 60 s failure threshold', async (t) => {
  const c = (await parse([])).config
  t.equal(c.metricsAddress, null)
  t.equal(c.readyExportFailureThresholdMs, 60_000)
  t.same(c, DEFAULT_CONFIG)
})

t.test('address forms', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['9464', { host: '127.0.0.1', port: 9464 }],
    [' 9464 ', { host: '127.0.0.1', port: 9464 }],
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['0.0.0.0:9464', { host: '0.0.0.0', port: 9464 }],
    ['localhost:9100', { host: 'localhost', port: 9100 }],
    ['metrics.internal:80', { host: 'metrics.internal', port: 80 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
    ['[::]:9464', { host: '::', port: 9464 }],
    ['unix:/run/spoa-tracer/metrics.sock', { path: '/run/spoa-tracer/metrics.sock' }],
    ['off', null],
  ]
  for (const [v, want] of cases) t.same((await parse(['--metrics-address', v])).config.metricsAddress, want, v)
  t.same((await parse(['--metrics-address=9464'])).config.metricsAddress, { host: '127.0.0.1', port: 9464 }, '--opt=value')
})

t.test('bad addresses: one line naming the option', async (t) => {
  for (const v of ['abc', ':9464', '70000', '65536', '-1', '1.2.3.4:', 'host:port', 'a:b:9464', '::1:9464', '[::1]', '[::1]:x', 'unix:', '9464x', 'ho st:9464']) {
    await t.rejects(parse(['--metrics-address', v]), { name: 'ConfigError', message: /^--metrics-address: expected \[host:\]port/ }, v)
  }
  const err = await parse(['--metrics-address', ':9464']).catch((e: Error) => e)
  t.notMatch((err as Error).message, /\n/, 'one line')
  t.match((err as Error).message, /":9464"/, 'quotes the value it refused')
  await t.rejects(parse(['--metrics-address']), /metrics-address/, 'a value is required')
})

t.test('not the SPOP listener address', async (t) => {
  await t.rejects(parse(['-p', '9464', '--metrics-address', '9464']), { message: /^metrics-address: 127\.0\.0\.1:9464 is the SPOP listener's address/ })
  await t.rejects(parse(['-a', 'unix:/tmp/s.sock', '--metrics-address', 'unix:/tmp/s.sock']), { message: /SPOP listener's socket/ })
  t.same((await parse(['-p', '9464', '--metrics-address', '9465'])).config.metricsAddress, { host: '127.0.0.1', port: 9465 })
})

t.test('--ready-export-failure-threshold', async (t) => {
  t.equal((await parse(['--ready-export-failure-threshold', '200ms'])).config.readyExportFailureThresholdMs, 200)
  t.equal((await parse(['--ready-export-failure-threshold', '2m'])).config.readyExportFailureThresholdMs, 120_000)
  t.equal((await parse(['--ready-export-failure-threshold', '0'])).config.readyExportFailureThresholdMs, 0)
  await t.rejects(parse(['--ready-export-failure-threshold', 'soon']), { message: /^--ready-export-failure-threshold: expected / })
})

t.test('config-file keys, and flags over the file', async (t) => {
  const files = { '/etc/a.yaml': 'metrics-address: 9464\nready-export-failure-threshold: 5s\n', '/etc/a.json': '{"metrics-address": "0.0.0.0:9100"}' }
  const y = (await parse(['-C', '/etc/a.yaml'], files)).config
  t.same([y.metricsAddress, y.readyExportFailureThresholdMs], [{ host: '127.0.0.1', port: 9464 }, 5000], 'a YAML number is a bare port')
  t.same((await parse(['-C', '/etc/a.json'], files)).config.metricsAddress, { host: '0.0.0.0', port: 9100 })
  t.same((await parse(['-C', '/etc/a.yaml', '--metrics-address', '9999'], files)).config.metricsAddress, { host: '127.0.0.1', port: 9999 }, 'flag wins')
  t.equal((await parse(['-C', '/etc/a.yaml', '--metrics-address', 'off'], files)).config.metricsAddress, null, 'off overrides the file')
  await t.rejects(parse(['-C', '/etc/b.yaml'], { '/etc/b.yaml': 'metrics-address: nope\n' }), { message: /^\/etc\/b\.yaml key "metrics-address": expected/ })
})

t.test('--help lists them', async (t) => {
  const r = await parse(['--help'])
  t.match(r.text, /Metrics and health:/)
  t.match(r.text, /--metrics-address/)
  t.match(r.text, /--ready-export-failure-threshold/)
})
