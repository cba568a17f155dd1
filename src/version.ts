// The package version, read from package.json (found by walking up from this
// module: it sits one level higher in dist/ than in src/).

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'spoa-tracer' && pkg.version) return pkg.version
    }
    dir = dirname(dir)
  }
  return '0.0.0'
}

export const VERSION = findVersion()
