// bin/spoa-tracer run as a program, as an operator, systemd or HAProxy's
// master runs it: its first line hands it to sh, which starts node with the
// flags of its exec line (V8's young generation, for memory); node then runs
// the same file as JavaScript. The benchmarks read those flags from the same
// line (bench/agent-launch.ts), so that they measure what is shipped.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { shippedNodeFlags } from '../bench/agent-launch.js'
import { BIN, run } from './helpers/agent-process.js'
import { within } from '../harness/wait.js'

t.test('the exec line gives node its flags; the benchmarks read the same ones', async (t) => {
  const flags = shippedNodeFlags(BIN)
  t.ok(flags.length > 0, `flags found in ${BIN}`)
  for (const f of flags) t.match(f, /^--[a-z-]+(=\S+)?$/)
  t.same(shippedNodeFlags('package.json'), [], 'a file without the line: none')
})

t.test('run as a program: arguments pass through, node has the flags, one PID, SIGTERM ends it', async (t) => {
  const p = run(t, ['-p', '0', '-i', '0', '--exporter', 'none', '--service-name', 'with space'], {}, undefined, 'exec')
  await p.port()
  const pid = p.child.pid!
  // exec: sh is replaced by node in the same process, so signals reach the agent itself.
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1)
  t.match(argv[0], /node$/, 'the process is node')
  const script = argv.indexOf(BIN)
  t.ok(script > 0, 'then the script')
  t.same(argv.slice(1, script), shippedNodeFlags(BIN), "with the exec line's flags")
  t.same(argv.slice(script + 1), ['-p', '0', '-i', '0', '--exporter', 'none', '--service-name', 'with space'], 'and every argument as given')
  p.child.kill('SIGTERM')
  t.same(await within(p.exit, 10_000, 'exit after SIGTERM'), { code: 0, signal: null })
})

t.test('--version, and a bad option exits 2, as with node bin/spoa-tracer', async (t) => {
  const v = run(t, ['--version'], {}, undefined, 'exec')
  t.same(await within(v.exit, 10_000, '--version'), { code: 0, signal: null })
  t.match(v.out(), /^spoa-tracer \d+\.\d+\.\d+/)
  const bad = run(t, ['--port', 'x', '-i', '0'], {}, undefined, 'exec')
  t.same(await within(bad.exit, 10_000, 'bad option'), { code: 2, signal: null })
  t.match(bad.err(), /port/)
  t.notMatch(bad.err(), /\n\s+at /, 'no stack trace')
})
