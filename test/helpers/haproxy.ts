// The HAProxy binary for a tap test (harness/haproxy.ts finds it, starts it):
// with CI=true a missing HAProxy is a test failure, elsewhere a skip.

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
