// How the benchmarks start our agent (bench/tracing-agent-process.ts, the
// real daemon behind a control channel): the script, and the node flags the
// shipped bin/spoa-tracer starts node with, read from its exec line, so that
// what is measured runs as what is shipped.

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const AGENT_SCRIPT = fileURLToPath(new URL('./tracing-agent-process.js', import.meta.url))

const BIN = fileURLToPath(new URL('../../bin/spoa-tracer', import.meta.url))

/** The node flags of bin/spoa-tracer's `exec node <flags> "$0" "$@"` line (none if it has no such line). */
export function shippedNodeFlags(bin: string = BIN): string[] {
  const m = /^":" \/\/; exec node ((?:--\S+ )*)"\$0" "\$@"$/m.exec(readFileSync(bin, 'utf8'))
  return m === null ? [] : m[1]!.split(' ').filter((f) => f !== '')
}
