// --log-intake and its bounds, through the real command-line parser (and
// the config file): addresses, repeats, defaults (off), bad values.

import t from 'tap'
import { parseCli } from '../../../src/daemon/cli.js'

const parse = (argv: string[], files: Record<string, string> = {}) =>
  parseCli(argv, {
    env: {},
    isTTY: false,
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
  })

t.test('off by default; repeatable; every transport', async (t) => {
  t.same((await parse([])).config.logIntake.addresses, [], 'off unless asked')
  const r = await parse(['--log-intake', 'udp://127.0.0.1:5140', '--log-intake', 'tcp://[::1]:5141,unix:/run/spoa-tracer/log.sock', '--log-max-record', '8192'])
  t.same(r.config.logIntake.addresses, [
    { transport: 'udp', host: '127.0.0.1', port: 5140 },
    { transport: 'tcp', host: '::1', port: 5141 },
    { transport: 'unix', path: '/run/spoa-tracer/log.sock' },
  ])
  t.equal(r.config.logIntake.maxRecordBytes, 8192)
  t.same((await parse(['--log-intake', 'udp://:5140'])).config.logIntake.addresses, [{ transport: 'udp', host: '127.0.0.1', port: 5140 }], 'no host: loopback')
  const file = await parse(['-C', 'a.yml'], { 'a.yml': 'log-intake:\n  - udp://127.0.0.1:5140\nlog-max-connections: 8\n' })
  t.same([file.config.logIntake.addresses.length, file.config.logIntake.maxConnections], [1, 8], 'from the config file')
})

t.test('bad values: one message naming the option and the accepted forms', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--log-intake', 'http://127.0.0.1:1'], /--log-intake.*udp:\/\/HOST:PORT, tcp:\/\/HOST:PORT or unix:\/path/],
    [['--log-intake', 'udp://localhost:5140'], /--log-intake.*"localhost" is not an IP address/],
    [['--log-intake', 'udp://127.0.0.1:70000'], /above 65535/],
    [['--log-intake', 'unix:relative.sock'], /absolute path/],
    [['--log-intake', 'udp://127.0.0.1:5140', '--log-intake', 'udp://127.0.0.1:5140'], /given twice/],
    [['--log-max-record', '100'], /--log-max-record.*integer from 480/],
    [['--log-receive-buffer', 'lots'], /--log-receive-buffer/],
  ]
  for (const [argv, msg] of bad) await t.rejects(parse(argv), { message: msg }, argv.join(' '))
})
