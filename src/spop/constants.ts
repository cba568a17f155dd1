// SPOP wire constants (HAProxy doc/SPOE.txt, sections 3.1 to 3.5; the
// contributor's notes and test vectors are docs/PROTOCOL.md, whose tables of
// frame types, data types and statuses are checked against these by
// test/spop/protocol-doc.test.ts). Plain `as const` objects rather than
// const enums: they give runtime names for log lines and still type-check as
// unions, and they survive per-file transpilation (tap's loader).

/** Frame types, byte 0 of every frame body (SPOE.txt 3.2.2). */
export const FrameType = {
  /** Continuation fragment of a NOTIFY (HAProxy 2.x only). */
  UNSET: 0,
  HAPROXY_HELLO: 1,
  HAPROXY_DISCONNECT: 2,
  NOTIFY: 3,
  AGENT_HELLO: 101,
  AGENT_DISCONNECT: 102,
  ACK: 103,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** Frame flags: a 32-bit big-endian field; bit 0 is FIN, bit 1 ABORT (always with FIN). */
export const FrameFlag = {
  FIN: 0x1,
  ABORT: 0x2,
} as const

/** Typed-data types: the LOW nibble of the type byte; the high nibble holds flags. */
export const DataType = {
  NULL: 0,
  BOOL: 1,
  INT32: 2,
  UINT32: 3,
  INT64: 4,
  UINT64: 5,
  IPV4: 6,
  IPV6: 7,
  STRING: 8,
  BINARY: 9,
} as const
export type DataType = (typeof DataType)[keyof typeof DataType]

/** BOOL carries its value in flag bit 0x10 of the type byte: true = 0x11, false = 0x01. */
export const BOOL_TRUE_FLAG = 0x10

/** Action types in an ACK's LIST-OF-ACTIONS, with the exact argument count HAProxy requires. */
export const ActionType = {
  SET_VAR: 1,
  UNSET_VAR: 2,
} as const
export type ActionType = (typeof ActionType)[keyof typeof ActionType]

/** Variable scopes of set-var / unset-var (a raw byte, not typed data). */
export const VarScope = {
  PROC: 0,
  SESS: 1,
  TXN: 2,
  REQ: 3,
  RES: 4,
} as const
export type VarScope = (typeof VarScope)[keyof typeof VarScope]

/** Status codes of HAPROXY-DISCONNECT / AGENT-DISCONNECT (SPOE.txt 3.5). */
export const Status = {
  NORMAL: 0,
  IO: 1,
  TIMEOUT: 2,
  TOO_BIG: 3,
  INVALID: 4,
  NO_VSN: 5,
  NO_FRAME_SIZE: 6,
  NO_CAP: 7,
  BAD_VSN: 8,
  BAD_FRAME_SIZE: 9,
  FRAG_NOT_SUPPORTED: 10,
  INTERLACED_FRAMES: 11,
  FRAMEID_NOTFOUND: 12,
  RES: 13,
  UNKNOWN: 99,
} as const
export type Status = (typeof Status)[keyof typeof Status]

/** HAProxy's own text for each status (2.6 `spoe_frm_err_reasons`). */
export const STATUS_MESSAGES: Readonly<Record<number, string>> = {
  0: 'normal',
  1: 'I/O error',
  2: 'a timeout occurred',
  3: 'frame is too big',
  4: 'invalid frame received',
  5: 'version value not found',
  6: 'max-frame-size value not found',
  7: 'capabilities value not found',
  8: 'unsupported version',
  9: 'max-frame-size too big or too small',
  10: 'fragmentation not supported',
  11: 'invalid interlaced frames',
  12: 'frame-id not found',
  13: 'resource allocation error',
  99: 'an unknown error occurred',
}

/** Length prefix of every frame: 4 bytes, big-endian, counting the bytes after it. */
export const LENGTH_PREFIX_SIZE = 4
/** Smallest frame body: type (1) + flags (4) + stream-id (1) + frame-id (1). */
export const MIN_FRAME_BODY = 7
/** The negotiated max-frame-size must be at least this (SPOE.txt 3.2). */
export const MIN_MAX_FRAME_SIZE = 256
/** HAProxy's default announce: tune.bufsize (16384) - 4. */
export const HAPROXY_DEFAULT_MAX_FRAME_SIZE = 16380
/** The only SPOP version that exists, on 2.x and 3.x alike. */
export const SPOP_VERSION = '2.0'
/** At most 255 arguments per message: nb-args is one byte. */
export const MAX_ARGS_PER_MESSAGE = 255
/** 2.6 rejects an AGENT-DISCONNECT whose message is longer than this. */
export const MAX_DISCONNECT_MESSAGE = 255

/** Capabilities an agent may announce (SPOE.txt 3.2.1). */
export const CAPABILITIES = ['pipelining', 'async', 'fragmentation'] as const
export type Capability = (typeof CAPABILITIES)[number]
