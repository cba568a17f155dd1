// LIST-OF-ACTIONS (SPOE.txt 3.1.5), the ACK payload:
//   set-var:   01 03 <scope:u8> <name:raw string> <value:typed data>
//   unset-var: 02 02 <scope:u8> <name:raw string>
// The scope and the name carry no type byte. HAProxy silently stops reading an
// ACK at the first action with an unknown type, a wrong nb-args or a scope
// outside 0-4, so the encoder refuses to produce one and the decoder (used by
// tests and the load generator, playing HAProxy) rejects one.

import { ActionType, VarScope } from './constants.js'
import { invalid } from './errors.js'
import { type Cursor, readRawString, readU8 } from './reader.js'
import { readTypedData, type TypedValue, writeTypedData } from './typed-data.js'
import type { Writer } from './writer.js'

export type Action =
  | { type: typeof ActionType.SET_VAR; scope: VarScope; name: string; value: TypedValue }
  | { type: typeof ActionType.UNSET_VAR; scope: VarScope; name: string }

export const setVar = (scope: VarScope, name: string, value: TypedValue): Action => ({
  type: ActionType.SET_VAR,
  scope,
  name,
  value,
})

export const unsetVar = (scope: VarScope, name: string): Action => ({ type: ActionType.UNSET_VAR, scope, name })

const isScope = (s: number): s is VarScope => s >= VarScope.PROC && s <= VarScope.RES

export function readActions(c: Cursor): Action[] {
  const actions: Action[] = []
  while (c.pos < c.end) {
    const type = readU8(c)
    const nbArgs = readU8(c)
    if (type === ActionType.SET_VAR) {
      if (nbArgs !== 3) throw invalid(`set-var with ${nbArgs} arguments`)
      const scope = readScope(c)
      const name = readRawString(c)
      actions.push({ type, scope, name, value: readTypedData(c) })
    } else if (type === ActionType.UNSET_VAR) {
      if (nbArgs !== 2) throw invalid(`unset-var with ${nbArgs} arguments`)
      const scope = readScope(c)
      actions.push({ type, scope, name: readRawString(c) })
    } else {
      throw invalid(`unknown action type ${type}`)
    }
  }
  return actions
}

function readScope(c: Cursor): VarScope {
  const scope = readU8(c)
  if (!isScope(scope)) throw invalid(`variable scope ${scope}`)
  return scope
}

export function writeActions(w: Writer, actions: readonly Action[]): void {
  for (const a of actions) {
    if (!isScope(a.scope)) throw new RangeError(`variable scope ${a.scope as number}`)
    if (a.type === ActionType.SET_VAR) {
      w.u8(ActionType.SET_VAR)
      w.u8(3)
      w.u8(a.scope)
      w.rawString(a.name)
      writeTypedData(w, a.value)
    } else if (a.type === ActionType.UNSET_VAR) {
      w.u8(ActionType.UNSET_VAR)
      w.u8(2)
      w.u8(a.scope)
      w.rawString(a.name)
    } else {
      throw new TypeError(`unknown action type ${(a as { type: unknown }).type}`)
    }
  }
}
