// The agent as a process for tests: bin/spoa-tracer (built into dist/)
// spawned with arguments, its stdout and stderr kept, its JSON log lines
// readable as they come, its exit awaited. Killed by PID at the end of the
// test if still running; every wait is bounded.

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { eventually } from './wait.js'

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
}

export function run(t: Test, args: string[], env: Record<string, string> = {}, cwd?: string): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const lines = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  const line = async (match: (l: Record<string, unknown>) => boolean, ms = 10_000): Promise<Record<string, unknown>> => {
    let found: Record<string, unknown> | undefined
    await eventually(() => (found = lines().find(match)) !== undefined || child.exitCode !== null, ms, 20)
    if (found === undefined) throw new Error(`no such log line within ${ms} ms; stdout:\n${out}\nstderr:\n${err}`)
    return found
  }
  return { child, out: () => out, err: () => err, exit, lines, line }
}

export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))])
  clearTimeout(timer)
  return r
}

/** A fresh directory, removed after the test. */
export function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'spoa-run-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}
