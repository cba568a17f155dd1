// The agent as a process for tests: bin/spoa-tracer (built into dist/)
// spawned with arguments (harness/process.ts: its stdout and stderr kept),
// its JSON log lines readable as they come, its exit awaited. Killed by PID
// at the end of the test if still running; every wait is bounded.

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { Test } from 'tap'
import { spawnTracked } from '../../harness/process.js'
import { eventually } from '../../harness/wait.js'

export const BIN = join(process.cwd(), 'bin', 'spoa-tracer')

export interface Proc {
  child: ChildProcess
  out: () => string
  err: () => string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** stdout's JSON log lines so far. */
  lines: () => Array<Record<string, unknown>>
  /** The first log line matching `match`, waiting for it at most `ms`; throws if none came. */
  line: (match: (l: Record<string, unknown>) => boolean, ms?: number) => Promise<Record<string, unknown>>
  /** The port it listens on, from its start line (for `-p 0`, logs on stdout): no port picked beforehand, none raced for. */
  port: (ms?: number) => Promise<number>
}

/**
 * `how`: 'node' runs `node bin/spoa-tracer` (this test's node); 'exec' runs
 * the file itself, as an operator or HAProxy does (its sh line picks node
 * from PATH: this test's node is put first).
 */
export function run(t: Test, args: string[], env: Record<string, string> = {}, cwd?: string, how: 'node' | 'exec' = 'node'): Proc {
  const spawnEnv = how === 'exec' ? { ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? process.env.PATH ?? ''}` } : env
  const [command, argv] = how === 'exec' ? [BIN, args] : [process.execPath, [BIN, ...args]]
  const p = spawnTracked({ name: 'spoa-tracer', command, args: argv, env: spawnEnv, ...(cwd ? { cwd } : {}) })
  const child = p.child
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(() => p.stop(2000, 'SIGKILL'))
  const lines = (): Array<Record<string, unknown>> =>
    p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  const line = async (match: (l: Record<string, unknown>) => boolean, ms = 10_000): Promise<Record<string, unknown>> => {
    let found: Record<string, unknown> | undefined
    await eventually(() => (found = lines().find(match)) !== undefined || child.exitCode !== null, ms, 20)
    if (found === undefined) throw new Error(`no such log line within ${ms} ms; stdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`)
    return found
  }
  const port = async (ms = 10_000): Promise<number> => {
    const started = await line((l) => l.msg === 'spoa-tracer started', ms)
    return (started.listen as { port: number }).port
  }
  return { child, out: p.stdout, err: p.stderr, exit, lines, line, port }
}

/** A fresh directory, removed after the test. */
export function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'spoa-run-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}
