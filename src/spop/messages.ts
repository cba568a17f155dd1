// LIST-OF-MESSAGES (SPOE.txt 3.1.4), the NOTIFY payload:
//   ( msg-name:<raw string> nb-args:<u8> ( arg-name:<raw string> arg-value:<typed data> ){nb-args} )*
// Arguments are an ORDERED list: names repeat inside one message (the
// spoa-opentracing contract sends `span=` twice) and unnamed arguments
// (`args src`) have an empty name.

import { MAX_ARGS_PER_MESSAGE } from './constants.js'
import { type Cursor, readRawString, readU8 } from './reader.js'
import { type NamedValue, readNamedValue, writeTypedData } from './typed-data.js'
import type { Writer } from './writer.js'

export interface Message {
  name: string
  args: NamedValue[]
}

export function readMessages(c: Cursor): Message[] {
  const messages: Message[] = []
  while (c.pos < c.end) {
    const name = readRawString(c)
    const n = readU8(c)
    const args = new Array<NamedValue>(n)
    for (let i = 0; i < n; i++) args[i] = readNamedValue(c)
    messages.push({ name, args })
  }
  return messages
}

export function writeMessages(w: Writer, messages: readonly Message[]): void {
  for (const m of messages) {
    if (m.args.length > MAX_ARGS_PER_MESSAGE) {
      throw new RangeError(`message ${m.name}: ${m.args.length} arguments, at most ${MAX_ARGS_PER_MESSAGE}`)
    }
    w.rawString(m.name)
    w.u8(m.args.length)
    for (const a of m.args) {
      w.rawString(a.name)
      writeTypedData(w, a)
    }
  }
}
