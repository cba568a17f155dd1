// OpenTelemetry's SDK stays out of the main thread: only export workers and
// the tracing thread load it (export-runner.ts, otel.ts). Loaded on the main
// thread it cost about 25 MB of RSS under load in half the runs of the
// shipped binary (docs/BENCHMARKS.md). Checked on the built JavaScript,
// which has exactly the imports that run: every module the daemon's entry
// reaches through static imports (a dynamic import() is not followed).

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ENTRY = join(ROOT, 'dist/src/daemon/run.js')

/** Static import and re-export specifiers of one ES module's source. */
export function staticImports(source: string): string[] {
  const out: string[] = []
  const re = /^\s*(?:import|export)\s+(?:[^'"();]*?\s+from\s+)?['"]([^'"]+)['"]/gm
  for (let m = re.exec(source); m !== null; m = re.exec(source)) out.push(m[1]!)
  return out
}

/** Every module reached from `entry` by static imports: local files, and package names. */
function reach(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>()
  const packages = new Set<string>()
  const todo = [entry]
  while (todo.length > 0) {
    const file = todo.pop()!
    if (files.has(file)) continue
    files.add(file)
    for (const spec of staticImports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec))
      else if (!spec.startsWith('node:')) packages.add(spec)
    }
  }
  return { files, packages }
}

t.test('the parser finds static imports and re-exports, not dynamic ones', async (t) => {
  const src = [
    "import { a } from './a.js'",
    "import * as b from 'b'",
    "import './side-effect.js'",
    "export { c } from './c.js'",
    "const d = await import('./d.js')",
    "import {\n  e,\n  f,\n} from '@scope/e'",
  ].join('\n')
  t.same(staticImports(src), ['./a.js', 'b', './side-effect.js', './c.js', '@scope/e'])
})

t.test("the daemon's main thread does not load OpenTelemetry's SDK", { skip: existsSync(ENTRY) ? false : 'not built (npm test builds first)' }, async (t) => {
  const { files, packages } = reach(ENTRY)
  t.ok(files.size > 20, `${files.size} modules reached`)
  t.ok(files.has(join(ROOT, 'dist/src/export/pool.js')), 'the export pool is among them')
  const otel = [...packages].filter((p) => p.startsWith('@opentelemetry/'))
  t.same(otel, [], 'no @opentelemetry package')
  const sdkModules = ['otel.js', 'export-runner.js', 'in-thread-worker.js', 'worker.js'].map((f) => join(ROOT, 'dist/src/export', f))
  t.same(
    sdkModules.filter((f) => files.has(f)).map((f) => relative(ROOT, f)),
    [],
    'none of the modules that load it',
  )
})
