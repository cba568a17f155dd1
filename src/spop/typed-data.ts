// TYPED-DATA (SPOE.txt 3.1.2): a type byte (low nibble = type, high nibble =
// flags) then a type-specific payload. Values decode to a tagged union that
// keeps the wire type, so decode(encode(x)) gives back x exactly.
//
// How HAProxy uses the types: it sends every integer sample as INT64, a
// missing sample as NULL, IP addresses as IPV4/IPV6; it reads any of the four
// integer types as a signed 64-bit value and takes STRING only for the exact
// byte 0x08 (a STRING byte with flags set is read as BINARY).

import { BOOL_TRUE_FLAG, DataType } from './constants.js'
import { invalid } from './errors.js'
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './ip-address.js'
import { internName, internsValuesOf } from './name-cache.js'
import { readBytes, readFixed, readLength, readU8 } from './reader.js'
import { utf8 } from './utf8.js'
import { type Cursor, readVarint, toSigned64, toUnsigned64, type Uint64 } from './varint.js'
import type { Writer } from './writer.js'

export type TypedValue =
  | { type: typeof DataType.NULL; value: null }
  | { type: typeof DataType.BOOL; value: boolean }
  /** INT32/INT64 are signed, UINT32/UINT64 unsigned; a number when safe, else a bigint. */
  | { type: typeof DataType.INT32 | typeof DataType.INT64; value: number | bigint }
  | { type: typeof DataType.UINT32 | typeof DataType.UINT64; value: number | bigint }
  /** Addresses in their text form (glibc inet_ntop style). */
  | { type: typeof DataType.IPV4 | typeof DataType.IPV6; value: string }
  | { type: typeof DataType.STRING; value: string }
  | { type: typeof DataType.BINARY; value: Buffer }

/** A named typed value: a KV-LIST item or a NOTIFY message argument (one object, not two). */
export type NamedValue = TypedValue & { name: string }

/** Constructors, mostly for handlers and tests: `tv.string('x')`, `tv.int64(-1)`. */
export const tv = {
  null: (): TypedValue => ({ type: DataType.NULL, value: null }),
  bool: (value: boolean): TypedValue => ({ type: DataType.BOOL, value }),
  int32: (value: number): TypedValue => ({ type: DataType.INT32, value }),
  uint32: (value: number): TypedValue => ({ type: DataType.UINT32, value }),
  int64: (value: number | bigint): TypedValue => ({ type: DataType.INT64, value: normalize(value) }),
  uint64: (value: number | bigint): TypedValue => ({ type: DataType.UINT64, value: normalize(value) }),
  ipv4: (value: string): TypedValue => ({ type: DataType.IPV4, value }),
  ipv6: (value: string): TypedValue => ({ type: DataType.IPV6, value }),
  string: (value: string): TypedValue => ({ type: DataType.STRING, value }),
  binary: (value: Buffer): TypedValue => ({ type: DataType.BINARY, value }),
}

/** Integers decode as numbers when safe; apply the same rule to constructed values. */
function normalize(v: number | bigint): number | bigint {
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(v)
  }
  return v
}

type RawValue = TypedValue['value']

/** Reads the payload of typed data whose type byte has been read; returns the bare value. */
function readValue(c: Cursor, type: number, typeByte: number): RawValue {
  switch (type) {
    case DataType.NULL:
      return null
    case DataType.BOOL:
      return (typeByte & BOOL_TRUE_FLAG) !== 0
    case DataType.INT32:
    case DataType.INT64:
      return toSigned64(readVarint(c))
    case DataType.UINT32:
    case DataType.UINT64:
      return readVarint(c)
    case DataType.IPV4:
      return formatIpv4(readFixed(c, 4, 'ipv4'))
    case DataType.IPV6:
      return formatIpv6(readFixed(c, 16, 'ipv6'))
    case DataType.STRING: {
      const len = readLength(c, 'string')
      const start = c.pos
      c.pos += len
      return utf8(c.buf, start, c.pos)
    }
    case DataType.BINARY:
      return readBytes(c)
    default:
      // Types 10-15 are reserved: their payload length is unknown, so nothing after them can be read.
      throw invalid(`reserved data type ${type}`)
  }
}

export function readTypedData(c: Cursor): TypedValue {
  const typeByte = readU8(c)
  const type = typeByte & 0x0f
  return { type, value: readValue(c, type, typeByte) } as TypedValue
}

/** Reads a raw name then typed data into one {name, type, value} object (the NOTIFY hot path). */
export function readNamedValue(c: Cursor): NamedValue {
  const len = readLength(c, 'name')
  const start = c.pos
  c.pos += len
  const name = internName(c.buf, start, c.pos)
  const typeByte = readU8(c)
  const type = typeByte & 0x0f
  if (type === DataType.STRING && internsValuesOf(name)) {
    const vlen = readLength(c, 'string')
    const vstart = c.pos
    c.pos += vlen
    return { name, type, value: internName(c.buf, vstart, c.pos) }
  }
  return { name, type, value: readValue(c, type, typeByte) } as NamedValue
}

export function writeTypedData(w: Writer, v: TypedValue): void {
  switch (v.type) {
    case DataType.NULL:
      w.u8(DataType.NULL)
      return
    case DataType.BOOL:
      w.u8(v.value ? DataType.BOOL | BOOL_TRUE_FLAG : DataType.BOOL)
      return
    case DataType.INT32:
    case DataType.INT64:
      w.u8(v.type)
      w.varint(toUnsigned64(v.value))
      return
    case DataType.UINT32:
    case DataType.UINT64:
      w.u8(v.type)
      w.varint(checkUnsigned(v.value))
      return
    case DataType.IPV4: {
      const b = parseIpv4(v.value)
      if (!b) throw new TypeError(`not an IPv4 address: ${v.value}`)
      w.u8(v.type)
      w.bytes(b)
      return
    }
    case DataType.IPV6: {
      const b = parseIpv6(v.value)
      if (!b) throw new TypeError(`not an IPv6 address: ${v.value}`)
      w.u8(v.type)
      w.bytes(b)
      return
    }
    case DataType.STRING:
      w.u8(v.type)
      w.rawString(v.value)
      return
    case DataType.BINARY:
      w.u8(v.type)
      w.lengthPrefixed(v.value)
      return
  }
  throw new TypeError(`unknown data type ${(v as { type: unknown }).type}`)
}

function checkUnsigned(v: number | bigint): Uint64 {
  if (v < 0) throw new RangeError(`unsigned value is negative: ${v}`)
  return v
}
