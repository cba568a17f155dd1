// The HAProxy binary for a tap test (harness/haproxy.ts finds it, starts it):
// with CI=true a missing HAProxy is a test failure, elsewhere a skip; and
// what the shipped rules send the server, checked the same way everywhere.

import type { Test } from 'tap'
import { findHaproxy } from '../../harness/haproxy.js'

/**
 * The HAProxy binary, or null after failing (CI) or skipping (elsewhere) the test.
 * Callers return at once on null.
 */
export function requireHaproxy(t: Test): string | null {
  const bin = findHaproxy()
  if (bin) return bin
  const why = 'HAProxy is not installed (sudo apt-get install -y haproxy)'
  if (process.env.CI === 'true') t.fail(`${why}; CI=true requires it`)
  else t.skip(why, () => {})
  return null
}

/**
 * The traceparent the compact rules give a new request that is not traced:
 * flags 00, a 64-bit trace id left-padded with zeros, a span id, neither zero.
 */
export function checkUnsampledContext(t: Test, traceparent: string | string[] | undefined, what: string): void {
  // Two traceparent headers (an array) are wrong too: never a match.
  const m = typeof traceparent === 'string' ? /^00-0{16}([0-9a-f]{16})-([0-9a-f]{16})-00$/.exec(traceparent) : null
  t.ok(m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!), `${what}: ${String(traceparent)}`)
}
