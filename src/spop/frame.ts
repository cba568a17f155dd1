// Frames (SPOE.txt 3.2): the one place that maps a wire type to its payload
// grammar, in both directions. A frame body (what follows the 4-byte length) is
//
//   TYPE:u8  FLAGS:u32be (bit0 FIN, bit1 ABORT)  STREAM-ID:varint  FRAME-ID:varint  PAYLOAD
//
// Payloads come in three shapes: KV-LIST (both HELLOs and both DISCONNECTs),
// LIST-OF-MESSAGES (NOTIFY) and LIST-OF-ACTIONS (ACK). A NOTIFY or ACK without
// FIN, and every UNSET frame, is one piece of a fragmented payload: it cannot be
// parsed alone, so it decodes to a `fragment` carrying its raw bytes.

import { FrameFlag, FrameType, LENGTH_PREFIX_SIZE, Status } from './constants.js'
import { type Action, readActions, writeActions } from './actions.js'
import { type KvList, kvGet, readKvList, writeKvList } from './kv-list.js'
import { type Message, readMessages, writeMessages } from './messages.js'
import { type Cursor, readU32, readU8 } from './reader.js'
import { tv } from './typed-data.js'
import { readVarint, type Uint64 } from './varint.js'
import { sharedWriter, type Writer } from './writer.js'

export interface FrameHeader {
  /** The raw 32-bit flags; see isFin / isAbort. */
  flags: number
  /** Opaque ids, echoed back in the ACK: numbers, bigints only beyond 2^53. */
  streamId: Uint64
  frameId: Uint64
}

export interface HelloFrame extends FrameHeader {
  type: 'haproxy-hello' | 'agent-hello'
  kv: KvList
}
export interface DisconnectFrame extends FrameHeader {
  type: 'haproxy-disconnect' | 'agent-disconnect'
  kv: KvList
}
export interface NotifyFrame extends FrameHeader {
  type: 'notify'
  messages: Message[]
}
export interface AckFrame extends FrameHeader {
  type: 'ack'
  actions: Action[]
}
/** A piece of a fragmented payload: a NOTIFY/ACK with FIN clear, or any UNSET frame. */
export interface FragmentFrame extends FrameHeader {
  type: 'fragment'
  wireType: number
  payload: Buffer
}
/** A frame type this protocol version does not define. */
export interface UnknownFrame extends FrameHeader {
  type: 'unknown'
  wireType: number
  payload: Buffer
}

export type Frame = HelloFrame | DisconnectFrame | NotifyFrame | AckFrame | FragmentFrame | UnknownFrame

const KV_TYPES = {
  [FrameType.HAPROXY_HELLO]: 'haproxy-hello',
  [FrameType.AGENT_HELLO]: 'agent-hello',
  [FrameType.HAPROXY_DISCONNECT]: 'haproxy-disconnect',
  [FrameType.AGENT_DISCONNECT]: 'agent-disconnect',
} as const

const WIRE_TYPES: Record<HelloFrame['type'] | DisconnectFrame['type'] | 'notify' | 'ack', FrameType> = {
  'haproxy-hello': FrameType.HAPROXY_HELLO,
  'agent-hello': FrameType.AGENT_HELLO,
  'haproxy-disconnect': FrameType.HAPROXY_DISCONNECT,
  'agent-disconnect': FrameType.AGENT_DISCONNECT,
  notify: FrameType.NOTIFY,
  ack: FrameType.ACK,
}

export const isFin = (f: FrameHeader): boolean => (f.flags & FrameFlag.FIN) !== 0
export const isAbort = (f: FrameHeader): boolean => (f.flags & FrameFlag.ABORT) !== 0

/**
 * Decodes one complete frame body (without its length prefix). Throws a
 * SpopError (status 4) if the body is truncated or malformed.
 */
export function decodeFrame(body: Buffer): Frame {
  const c: Cursor = { buf: body, pos: 0, end: body.length }
  const wireType = readU8(c)
  const flags = readU32(c)
  const streamId = readVarint(c)
  const frameId = readVarint(c)
  const fin = (flags & FrameFlag.FIN) !== 0
  switch (wireType) {
    case FrameType.NOTIFY:
      if (fin) return { type: 'notify', flags, streamId, frameId, messages: readMessages(c) }
      break
    case FrameType.ACK:
      if (fin) return { type: 'ack', flags, streamId, frameId, actions: readActions(c) }
      break
    case FrameType.UNSET:
      break
    case FrameType.HAPROXY_HELLO:
    case FrameType.AGENT_HELLO:
    case FrameType.HAPROXY_DISCONNECT:
    case FrameType.AGENT_DISCONNECT:
      return { type: KV_TYPES[wireType], flags, streamId, frameId, kv: readKvList(c) } as HelloFrame | DisconnectFrame
    default:
      return { type: 'unknown', wireType, flags, streamId, frameId, payload: body.subarray(c.pos) }
  }
  return { type: 'fragment', wireType, flags, streamId, frameId, payload: body.subarray(c.pos) }
}

/**
 * Where a frame body's payload starts (after its type, flags, stream-id and
 * frame-id): for a NOTIFY, its LIST-OF-MESSAGES, which the tracing thread
 * decodes again. The body was decoded whole before, so this cannot throw.
 */
export function payloadOffset(body: Buffer): number {
  const c: Cursor = { buf: body, pos: 5, end: body.length }
  readVarint(c)
  readVarint(c)
  return c.pos
}

function writeHeader(w: Writer, wireType: number, f: FrameHeader): void {
  w.u8(wireType)
  w.u32(f.flags)
  w.varint(f.streamId)
  w.varint(f.frameId)
}

/** Appends a frame, 4-byte length prefix included, to `w`. */
export function writeFrame(w: Writer, f: Frame): void {
  const start = w.pos
  w.u32(0) // length, patched below
  switch (f.type) {
    case 'notify':
      writeHeader(w, FrameType.NOTIFY, f)
      writeMessages(w, f.messages)
      break
    case 'ack':
      writeHeader(w, FrameType.ACK, f)
      writeActions(w, f.actions)
      break
    case 'fragment':
    case 'unknown':
      writeHeader(w, f.wireType, f)
      w.bytes(f.payload)
      break
    default:
      writeHeader(w, WIRE_TYPES[f.type], f)
      writeKvList(w, f.kv)
  }
  w.buf.writeUInt32BE(w.pos - start - LENGTH_PREFIX_SIZE, start)
}

/** Encodes a frame with its 4-byte length prefix, ready for a single socket write. */
export function encodeFrame(f: Frame): Buffer {
  const w = sharedWriter.reset()
  writeFrame(w, f)
  return w.take()
}

/**
 * The NOTIFY -> ACK hot path: appends one ACK frame (FIN set, ids echoed) to
 * `w`. If an action cannot be encoded, `w` is left as it was and the error
 * is thrown.
 */
export function writeAck(w: Writer, streamId: Uint64, frameId: Uint64, actions: readonly Action[]): void {
  const start = w.pos
  w.u32(0)
  w.u8(FrameType.ACK)
  w.u32(FrameFlag.FIN)
  w.varint(streamId)
  w.varint(frameId)
  if (actions.length > 0) {
    try {
      writeActions(w, actions)
    } catch (err) {
      w.pos = start
      throw err
    }
  }
  w.buf.writeUInt32BE(w.pos - start - LENGTH_PREFIX_SIZE, start)
}

/** One ACK frame as its own Buffer. */
export function encodeAck(streamId: Uint64, frameId: Uint64, actions: readonly Action[]): Buffer {
  const w = sharedWriter.reset()
  writeAck(w, streamId, frameId, actions)
  return w.take()
}

const HELLO_HEADER = { flags: FrameFlag.FIN, streamId: 0, frameId: 0 } as const

export interface AgentHelloFields {
  version: string
  maxFrameSize: number
  capabilities: readonly string[]
}

export function agentHello(h: AgentHelloFields): HelloFrame {
  return {
    type: 'agent-hello',
    ...HELLO_HEADER,
    kv: [
      { name: 'version', ...tv.string(h.version) },
      { name: 'max-frame-size', ...tv.uint32(h.maxFrameSize) },
      { name: 'capabilities', ...tv.string(h.capabilities.join(',')) },
    ],
  }
}

export function disconnectFrame(
  type: DisconnectFrame['type'],
  status: number,
  message: string,
): DisconnectFrame {
  return {
    type,
    ...HELLO_HEADER,
    kv: [
      { name: 'status-code', ...tv.uint32(status) },
      { name: 'message', ...tv.string(message) },
    ],
  }
}

/**
 * Reads status-code and message out of a DISCONNECT payload. Tolerant: any
 * integer type is accepted and a missing or odd status reads as 99 (unknown).
 */
export function disconnectInfo(kv: KvList): { status: number; message: string } {
  const code = kvGet(kv, 'status-code')
  const msg = kvGet(kv, 'message')
  const status = code && typeof code.value === 'number' && code.type >= 2 && code.type <= 5 ? code.value : Status.UNKNOWN
  return { status, message: msg && typeof msg.value === 'string' ? msg.value : '' }
}
