// HAProxy's stats socket (its runtime API), as the harness reads it: one
// command line and its whole answer; `show stat` as rows; `get var` of
// integer process variables; and waiting for a server to be UP after a
// health check that passed. Every wait is bounded.

import { connect } from 'node:net'
import { sleep } from './wait.js'

/** Sends one command line (several may be joined with ';'); resolves with the whole answer. */
export function cli(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: socketPath })
    let out = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no answer on ${socketPath} to "${command}" within ${timeoutMs} ms`))
    }, timeoutMs)
    s.setEncoding('utf8')
    s.on('data', (d: string) => (out += d))
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    s.once('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
    s.once('connect', () => s.write(`${command}\n`))
  })
}

/** `show stat` as rows of named columns. */
export async function showStat(socketPath: string): Promise<Array<Record<string, string>>> {
  const lines = (await cli(socketPath, 'show stat')).split('\n').filter((l) => l.trim() !== '')
  const header = lines[0]?.replace(/^#\s*/, '').split(',') ?? []
  return lines.slice(1).map((l) => {
    const cells = l.split(',')
    const row: Record<string, string> = {}
    header.forEach((h, i) => (row[h] = cells[i] ?? ''))
    return row
  })
}

/** `get var` of integer process variables: name (without "proc.") -> value; missing ones are absent. */
export async function getProcVars(socketPath: string, names: readonly string[]): Promise<Record<string, number>> {
  const out = await cli(socketPath, names.map((n) => `get var proc.${n}`).join(';'))
  const vars: Record<string, number> = {}
  for (const m of out.matchAll(/^proc\.(\S+): type=\w+ value=<(-?\d+)>/gm)) vars[m[1]!] = Number(m[2])
  return vars
}

/**
 * Waits (bounded) until server `px/sv` is UP by a health check that passed
 * (a server starts UP before its first check: that is not enough, since a
 * first check that fails takes it DOWN for its `downinter`). Returns its row.
 */
export async function waitServerUp(socketPath: string, px: string, sv: string, ms = 10_000): Promise<Record<string, string>> {
  const deadline = Date.now() + ms
  for (;;) {
    const row = (await showStat(socketPath)).find((r) => r.pxname === px && r.svname === sv)
    // check_status: the last check's result, '*' while the next one runs; INI before the first.
    const check = row?.check_status?.replace(/^\* ?/, '') ?? ''
    if (row?.status?.startsWith('UP') && /^L\dOK/.test(check)) return row
    if (Date.now() > deadline) {
      throw new Error(
        `server ${px}/${sv} not UP after ${ms} ms (status ${row?.status ?? 'absent'}, check ${row?.check_status ?? '?'} ${row?.check_desc ?? ''})`,
      )
    }
    await sleep(50)
  }
}
