// --metrics-address: what each accepted form listens on, what is refused
// (with the option named), and how an address is printed back.

import t from 'tap'
import { formatAddress, parseMetricsAddress } from '../../src/metrics/address.js'
import { ConfigError } from '../../src/util/config-error.js'

const parse = (v: unknown) => parseMetricsAddress('--metrics-address', v)

t.test('accepted forms', async (t) => {
  t.same(parse('9464'), { host: '127.0.0.1', port: 9464 }, 'a bare port listens on loopback only')
  t.same(parse(9464), { host: '127.0.0.1', port: 9464 }, 'a number (a config file, an environment value)')
  t.same(parse(' 9464 '), { host: '127.0.0.1', port: 9464 }, 'spaces around it')
  t.same(parse('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 }, 'listening wider is asked for by naming the host')
  t.same(parse('metrics.local:0'), { host: 'metrics.local', port: 0 }, 'a host name; port 0 picks a free port')
  t.same(parse('[::1]:9464'), { host: '::1', port: 9464 }, 'IPv6 in brackets')
  t.same(parse('[::ffff:127.0.0.1]:65535'), { host: '::ffff:127.0.0.1', port: 65535 }, 'the largest port')
  t.same(parse('unix:/run/spoa-tracer/metrics.sock'), { path: '/run/spoa-tracer/metrics.sock' })
})

t.test('off: empty or "off", whatever its case', async (t) => {
  t.equal(parse('off'), null)
  t.equal(parse('OFF'), null)
  t.equal(parse(''), null)
  t.equal(parse('  '), null)
})

t.test('refused, naming the option and what it accepts', async (t) => {
  for (const bad of ['65536', '123456', ':9464', '::1:9464', '[::1]:', '[::1]:x', 'host:', 'host:http', 'my host:9464', 'unix:', 'host:-1']) {
    const err = t.throws(() => parse(bad), ConfigError, `"${bad}"`) as unknown
    if (!(err instanceof ConfigError)) continue
    t.equal(err.option, '--metrics-address', `"${bad}": the option is named`)
    t.match(err.message, /expected \[host:\]port .*unix:\/path or off/, `"${bad}": the usage is given`)
  }
  t.throws(() => parseMetricsAddress('SPOA_METRICS_ADDRESS', 'x'), { name: 'ConfigError', option: 'SPOA_METRICS_ADDRESS' }, 'the name given is the one reported')
})

t.test('formatAddress prints what parseMetricsAddress reads', async (t) => {
  t.equal(formatAddress({ host: '127.0.0.1', port: 9464 }), '127.0.0.1:9464')
  t.equal(formatAddress({ host: '::1', port: 9464 }), '[::1]:9464', 'IPv6 in brackets')
  t.equal(formatAddress({ path: '/run/m.sock' }), 'unix:/run/m.sock')
  for (const s of ['0.0.0.0:1', '[::1]:9464', 'unix:/tmp/x.sock', 'localhost:80']) {
    t.equal(formatAddress(parse(s)!), s, `"${s}" round trip`)
  }
})
