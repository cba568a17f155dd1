#!/usr/bin/env node
// Installs dependencies with `npm ci` when they are missing or older than the
// lockfile, so README's commands work on a fresh clone. Uses only Node built-ins.

import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'

const marker = 'node_modules/.package-lock.json'
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync('package-lock.json').mtimeMs
if (stale) {
  console.error('spoa-tracer: installing dependencies (npm ci)...')
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
