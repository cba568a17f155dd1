// haproxy/haproxy-compact-log.cfg: its request rules are those of
// haproxy-compact.cfg (HAProxy has no include: a copy, kept in step here),
// it has no SPOE filter, and HAProxy accepts it in every variant its
// environment variables select.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { requireHaproxy } from '../helpers/haproxy.js'

const bin = requireHaproxy(t)

/**
 * The frontend's request rules that decide and propagate: from `acl tr_skip`
 * to what each file keeps for its response (variables for the SPOE message,
 * the record's request half for the log line).
 */
function requestRules(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const from = text.indexOf('    acl tr_skip ')
  const to = text.indexOf('    # What the response')
  return text
    .slice(from, to)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

t.test('the request rules are those of haproxy-compact.cfg; no SPOE', async (t) => {
  const want = requestRules('haproxy/haproxy-compact.cfg')
  t.ok(want.length > 30)
  t.same(requestRules('haproxy/haproxy-compact-log.cfg'), want, 'copy them again from haproxy-compact.cfg')
  t.notMatch(readFileSync('haproxy/haproxy-compact-log.cfg', 'utf8'), /^\s*(filter spoe|http-response send-spoe)/m)
})

t.test('HAProxy accepts every variant', { skip: bin === null }, async (t) => {
  for (const env of [{}, { SPOA_LOG_TCP: '127.0.0.1:5141' }, { SPOA_LOG_TARGET: '/run/x.sock' }, { SPOA_LOG_TRACED_ONLY: '1' }, { SPOA_LOG_TRACED_ONLY: '1', SPOA_LOG_TCP: '127.0.0.1:5141' }, { SPOA_COMPACT_B3: '1' }, { SPOA_LOG_ACCESS: '0' }, { SPOA_LOG_ACCESS: '0', SPOA_LOG_TCP: '127.0.0.1:5141', SPOA_COMPACT_B3: '1' }]) {
    const r = spawnSync(bin!, ['-c', '-f', 'haproxy/haproxy-compact-log.cfg'], { env: { ...process.env, ...env }, encoding: 'utf8' })
    t.equal(r.status, 0, JSON.stringify(env))
    t.notMatch(r.stdout + r.stderr, /WARNING|ALERT/, JSON.stringify(env))
  }
})
