// The package: its version and the directory it is installed in (the one
// holding package.json, bin/, haproxy/ and contrib/), found by walking up from
// this module (src/daemon/ in a checkout, dist/src/daemon/ once built).

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackage(): { dir: string; version: string } {
  const start = dirname(fileURLToPath(import.meta.url))
  let dir = start
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'spoa-tracer' && pkg.version) return { dir, version: pkg.version }
    }
    dir = dirname(dir)
  }
  return { dir: dirname(start), version: '0.0.0' }
}

const found = findPackage()
export const VERSION = found.version
/** Where the package is installed: the shipped haproxy/ and contrib/ files are under it. */
export const PACKAGE_DIR = found.dir
