// The fail-fast guards stay in every shipped profile (haproxy/README.md,
// "When the agent fails"): each SPOE event and send-spoe-group rule is
// conditioned on the agent being UP, the agent's backend is the same guarded
// one in every HAProxy configuration, and the wrk benchmark's copies (with
// and without the guards, harness/guards.ts) are what HAProxy accepts. The
// behaviour itself is proven in test/faults/agent-*.test.ts.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { checkBackendCopy, GUARD_CONDITION, writeUnguarded } from '../harness/guards.js'
import { requireHaproxy } from './helpers/haproxy.js'

const read = (f: string): string => readFileSync(f, 'utf8')
const directives = (text: string, re: RegExp): string[] => text.split('\n').filter((l) => re.test(l.replace(/#.*$/, '')))

t.test('every SPOE event of the 9-span profiles waits for nothing when the agent is DOWN', async (t) => {
  for (const f of ['haproxy/spoe.cfg', 'haproxy/spoe-propagation.cfg']) {
    const events = directives(read(f), /^\s*event\s/)
    t.equal(events.length, 11, `${f}: 11 event lines`)
    t.same(
      events.filter((l) => !l.includes(`if${GUARD_CONDITION}`)),
      [],
      `${f}: each one "if${GUARD_CONDITION} ..."`,
    )
  }
  const sends = directives(read('haproxy/haproxy-compact.cfg'), /send-spoe-group/)
  t.ok(sends.length > 0 && sends.every((l) => l.includes(GUARD_CONDITION)), 'haproxy-compact.cfg: send-spoe-group too')
})

t.test('one guarded agent backend in every HAProxy configuration, and in the benchmark', async (t) => {
  const backend = read('haproxy/haproxy.cfg')
  for (const want of ['retries 0', 'timeout check ', 'option spop-check', ' fall ', ' fastinter ', 'observe layer4', 'on-error mark-down', 'on-marked-down shutdown-sessions']) {
    t.ok(backend.includes(want), `haproxy.cfg: ${want.trim()}`)
  }
  for (const f of ['haproxy/haproxy-mw.cfg', 'haproxy/haproxy-compact.cfg', 'haproxy/bench/proxy.cfg']) {
    t.doesNotThrow(() => checkBackendCopy(f, 'haproxy/haproxy.cfg'), `${f}: the same`)
  }
})

t.test("the benchmark's configurations, with and without the guards, are valid HAProxy configurations", async (t) => {
  const bin = requireHaproxy(t)
  if (bin === null) return
  const dir = mkdtempSync(join(tmpdir(), 'spoa-guards-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const check = (cfg: string, env: Record<string, string>): string =>
    execFileSync(bin, ['-c', '-f', cfg], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const modes = [
    { spoe: 'haproxy/spoe.cfg', profile: '' },
    { spoe: 'haproxy/spoe-propagation.cfg', profile: 'propagation' },
    { spoe: 'haproxy/spoe-compact.cfg', profile: 'compact' },
  ]
  for (const m of modes) {
    const env = { SPOE_CONF: m.spoe, BENCH_PROFILE: m.profile, STATS_SOCK: join(dir, 'stats.sock') }
    t.doesNotThrow(() => check('haproxy/bench/proxy.cfg', { ...env, BENCH_GUARDS: '1' }), `${m.spoe}: guarded`)
    const spoe = writeUnguarded(m.spoe, dir)
    const proxy = writeUnguarded('haproxy/bench/proxy.cfg', dir)
    const removed = spoe.removed + (m.profile === 'compact' ? proxy.removed : 0)
    t.ok(removed > 0, `${m.spoe}: ${removed} guard(s) taken off`)
    t.same(directives(read(spoe.path), /srv_is_up/), [], 'none left')
    t.same(directives(read(spoe.path), /\b(if|unless)\s*$/), [], 'no rule left with a bare if: its events are sent unconditionally')
    t.doesNotThrow(() => check(m.profile === 'compact' ? proxy.path : 'haproxy/bench/proxy.cfg', { ...env, SPOE_CONF: spoe.path, BENCH_GUARDS: '0' }), `${m.spoe}: unguarded`)
  }
})
