#!/usr/bin/env node
// Runs every test with tap and ends with one plain line, "N passed, N failed,
// N skipped", counted from tap's saved per-file results, so that a run which
// executed nothing, or a file that crashed before reporting, cannot pass
// unnoticed. Extra arguments go to tap (e.g. a test file to run alone).

import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'

const resultsDir = '.tap/test-results'
rmSync(resultsDir, { recursive: true, force: true })

const tap = spawnSync(process.execPath, ['node_modules/tap/dist/esm/run.mjs', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? '1' : '0') },
})

function* walk(dir) {
  let entries = []
  try {
    entries = readdirSync(dir)
  } catch {
    return
  }
  for (const e of entries) {
    const p = join(dir, e)
    if (statSync(p).isDirectory()) yield* walk(p)
    else if (p.endsWith('.tap')) yield p
  }
}

// Count the test points at the top level of each file's TAP stream: one per
// `t.test()` (or bare assertion) in that file.
let passed = 0
let failed = 0
let skipped = 0
const failures = []
for (const file of walk(resultsDir)) {
  let points = 0
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(not ok|ok) \d+(?: - (.*?))?(?: # (SKIP|TODO)\b.*)?$/.exec(line)
    if (!m) continue
    points++
    if (m[3]) skipped++
    else if (m[1] === 'ok') passed++
    else {
      failed++
      failures.push(`${file.slice(resultsDir.length + 1, -4)}: ${m[2] ?? ''}`)
    }
  }
  if (points === 0) {
    failed++
    failures.push(`${file.slice(resultsDir.length + 1, -4)}: reported no test`)
  }
}
if (tap.status !== 0 && failed === 0) {
  failed++
  failures.push(`tap exited with status ${tap.status ?? tap.signal}`)
}
if (passed + failed + skipped === 0) {
  failed++
  failures.push('no test ran')
}
if (failures.length > 0) {
  console.log('\nFailed:')
  for (const f of failures) console.log(`  ${f}`)
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
process.exit(failed > 0 ? 1 : 0)
