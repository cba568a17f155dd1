// Interning of the short names that every NOTIFY repeats (argument names
// like "id", "span", "tag", message names): decoding them from bytes each
// time was a large share of the agent's CPU. A small direct-mapped cache keyed
// by a hash of the bytes returns the same string for the same bytes, without
// allocating. Bounded: 512 entries, names up to 32 bytes; a collision simply
// replaces the entry. Values go through it only for the argument names a
// consumer registers with internValuesOf (span names after `span=`, tag keys
// after `tag=`: names again, repeated on every request); unique ids and URLs
// never do.

import { utf8 } from './utf8.js'

const SLOTS = 512
const MAX_LEN = 32

const keys: (Buffer | null)[] = new Array<Buffer | null>(SLOTS).fill(null)
const strings: string[] = new Array<string>(SLOTS).fill('')

/** The UTF-8 string of buf[start, end), interned when short. */
export function internName(buf: Buffer, start: number, end: number): string {
  const len = end - start
  if (len === 0) return ''
  if (len > MAX_LEN) return utf8(buf, start, end)
  // FNV-1a over the bytes, folded into the table size.
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
  const slot = (h >>> 0) & (SLOTS - 1)
  const key = keys[slot]
  if (key !== null && key !== undefined && key.length === len) {
    let same = true
    for (let i = 0; i < len; i++) {
      if (key[i] !== buf[start + i]) {
        same = false
        break
      }
    }
    if (same) return strings[slot]!
  }
  const s = utf8(buf, start, end)
  keys[slot] = Buffer.from(buf.subarray(start, end))
  strings[slot] = s
  return s
}

/** Argument names whose string values are interned too (see internValuesOf). */
const valueNames = new Set<string>()

/**
 * Registers argument names whose string values are themselves names, the
 * same on every request (the tracing grammar's `span=`, `child-of=`,
 * `tag=`...): readNamedValue then interns those values like names. A hint
 * for speed only: decoded values are equal either way.
 */
export function internValuesOf(names: Iterable<string>): void {
  for (const n of names) valueNames.add(n)
}

export function internsValuesOf(name: string): boolean {
  return valueNames.has(name)
}
