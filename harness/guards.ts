// The fail-fast guards of the shipped HAProxy configurations (haproxy/README.md,
// "When the agent fails"), as `npm run bench -- wrk` switches them off to
// measure what they cost the healthy path: `<mode>-unguarded` is a mode with
// the srv_is_up() condition taken off the SPOE events (the SPOE file) and the
// send-spoe-group rule (proxy.cfg's copy of the compact rules), and the agent's
// backend as it was before the guards (BENCH_GUARDS=0 in proxy.cfg). Also
// refuses to measure when proxy.cfg's guarded backend is not the shipped one.

import { readFileSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'

export const UNGUARDED = '-unguarded'
/** The condition every guarded SPOE event and send-spoe-group rule carries. */
export const GUARD_CONDITION = ' { srv_is_up(spoa-tracer/agent) }'

/** "spoe-unguarded" -> { base: "spoe", guards: false }. */
export function splitMode(mode: string): { base: string; guards: boolean } {
  return mode.endsWith(UNGUARDED) ? { base: mode.slice(0, -UNGUARDED.length), guards: false } : { base: mode, guards: true }
}

/**
 * A copy of `src` in `dir` without the guard conditions; how many it removed.
 * A guard that was a rule's only condition takes its `if` along: HAProxy
 * reads a bare trailing `if` as a condition that never holds.
 */
export function writeUnguarded(src: string, dir: string): { path: string; removed: number } {
  let removed = 0
  const text = readFileSync(src, 'utf8')
    .split('\n')
    .map((line) => {
      if (!line.includes(GUARD_CONDITION)) return line
      removed += line.split(GUARD_CONDITION).length - 1
      return line.replaceAll(GUARD_CONDITION, '').replace(/\s+if\s*$/, '')
    })
    .join('\n')
  const path = join(dir, `unguarded-${basename(src)}`)
  writeFileSync(path, text)
  return { path, removed }
}

/** The directives of `backend spoa-tracer`, comments and blank lines left out. */
function backendLines(text: string): string[] {
  const out: string[] = []
  let inside = false
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').replace(/\s+/g, ' ').trim()
    if (/^(frontend|backend|listen|defaults|global|program|peers|resolvers|userlist)\b/.test(line)) {
      if (inside) break
      inside = line === 'backend spoa-tracer'
      continue
    }
    if (inside && line !== '') out.push(line)
  }
  return out
}

/**
 * proxy.cfg's spoa-tracer backend with BENCH_GUARDS=1 must be the shipped
 * haproxy.cfg's (the server's address apart): the A/B measures the guards
 * users get.
 */
export function checkBackendCopy(proxyCfg: string, shippedCfg: string): void {
  const shipped = backendLines(readFileSync(shippedCfg, 'utf8'))
  const proxy = backendLines(readFileSync(proxyCfg, 'utf8'))
  // The guarded branch: the lines outside `.if BENCH_GUARDS ... .else ... .endif`, and those of its `.if` part.
  const guarded: string[] = []
  let branch: 'none' | 'if' | 'else' = 'none'
  for (const l of proxy) {
    if (l.startsWith('.if') && l.includes('BENCH_GUARDS')) branch = 'if'
    else if (l === '.else' && branch === 'if') branch = 'else'
    else if (l === '.endif' && branch !== 'none') branch = 'none'
    else if (branch !== 'else' && !l.startsWith('.')) guarded.push(l)
  }
  const norm = (l: string): string => l.replace(/^server agent \S+/, 'server agent ADDR')
  const a = shipped.map(norm)
  const b = guarded.map(norm)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      throw new Error(
        `haproxy/bench/proxy.cfg's spoa-tracer backend differs from ${shippedCfg}'s ` +
          `(line ${i + 1}: "${a[i] ?? '(nothing)'}" there, "${b[i] ?? '(nothing)'}" in proxy.cfg); copy it again`,
      )
    }
  }
}
