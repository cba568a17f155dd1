// SPOE sample values -> span data, following spoa-opentracing's conversion
// table with two changes: BINARY becomes base64 (the C agent rejects it), and
// integers beyond 2^53, which a JavaScript number cannot hold exactly, become
// decimal strings rather than silently losing digits.

import { DataType, type TypedValue } from '../spop/index.js'
import type { AttrValue } from './types.js'

/**
 * The string form of a value, as the C agent builds names and joined values:
 * NULL is empty, booleans are "1"/"0", integers decimal, addresses as text.
 */
export function valueToString(v: TypedValue): string {
  switch (v.type) {
    case DataType.STRING:
    case DataType.IPV4:
    case DataType.IPV6:
      return v.value
    case DataType.NULL:
      return ''
    case DataType.BOOL:
      return v.value ? '1' : '0'
    case DataType.BINARY:
      return v.value.toString('base64')
    default:
      return String(v.value)
  }
}

/**
 * A single value as an attribute, keeping its type; undefined for NULL (an
 * absent sample sets no attribute: OpenTelemetry has no null attribute).
 */
export function valueToAttribute(v: TypedValue): AttrValue | undefined {
  switch (v.type) {
    case DataType.NULL:
      return undefined
    case DataType.BOOL:
      return v.value
    case DataType.INT32:
    case DataType.INT64:
    case DataType.UINT32:
    case DataType.UINT64:
      return typeof v.value === 'number' ? v.value : v.value.toString()
    case DataType.BINARY:
      return v.value.toString('base64')
    default:
      return v.value
  }
}

/** Values of one argument and its unnamed continuations: one keeps its type, several join as text. */
export function valuesToAttribute(values: readonly TypedValue[]): AttrValue | undefined {
  if (values.length === 1) return valueToAttribute(values[0]!)
  let s = ''
  for (const v of values) s += valueToString(v)
  return s
}

export function valuesToString(values: readonly TypedValue[]): string {
  if (values.length === 1) return valueToString(values[0]!)
  let s = ''
  for (const v of values) s += valueToString(v)
  return s
}

/** Whether an `error` tag value means "this span failed". */
export function isTruthy(v: AttrValue): boolean {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  const s = v.trim().toLowerCase()
  return s === 'true' || s === '1' || s === 'yes'
}
