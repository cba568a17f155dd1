// KV-LIST (SPOE.txt 3.1.3): `name:<raw string> value:<typed data>` repeated to
// the end of the payload, no count and no terminator. The payload of HELLO and
// DISCONNECT frames in both directions.

import type { Cursor } from './reader.js'
import { type NamedValue, readNamedValue, writeTypedData } from './typed-data.js'
import type { Writer } from './writer.js'

export type KvList = NamedValue[]

export function readKvList(c: Cursor): KvList {
  const items: KvList = []
  while (c.pos < c.end) items.push(readNamedValue(c))
  return items
}

export function writeKvList(w: Writer, items: readonly NamedValue[]): void {
  for (const item of items) {
    w.rawString(item.name)
    writeTypedData(w, item)
  }
}

/** The first item with this exact name (HAProxy's peers never repeat a key). */
export function kvGet(items: readonly NamedValue[], name: string): NamedValue | undefined {
  for (const item of items) if (item.name === name) return item
  return undefined
}
