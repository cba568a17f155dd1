// Typed protocol errors. Every error raised by the codec or the connection
// carries the SPOP status code it maps to, so exactly one place (the
// connection) can turn any of them into AGENT-DISCONNECT bytes.

import { STATUS_MESSAGES, Status } from './constants.js'

const kSpopError = Symbol.for('spoa-tracer.SpopError')

export type SpopErrorCode =
  | 'ERR_SPOP_TRUNCATED'
  | 'ERR_SPOP_INVALID'
  | 'ERR_SPOP_TOO_BIG'
  | 'ERR_SPOP_BAD_VERSION'
  | 'ERR_SPOP_NO_VERSION'
  | 'ERR_SPOP_NO_FRAME_SIZE'
  | 'ERR_SPOP_BAD_FRAME_SIZE'
  | 'ERR_SPOP_FRAGMENTATION'
  | 'ERR_SPOP_INTERLACED'
  | 'ERR_SPOP_FRAMEID_NOTFOUND'
  | 'ERR_SPOP_RESOURCE'
  | 'ERR_SPOP_TIMEOUT'

export class SpopError extends Error {
  /** Stable machine-readable code, for logs, metrics and tests. */
  readonly code: SpopErrorCode
  /** The SPOP status code this error maps to in an AGENT-DISCONNECT. */
  readonly status: Status

  constructor(code: SpopErrorCode, status: Status, message?: string) {
    super(message ?? STATUS_MESSAGES[status] ?? 'SPOP error')
    this.name = 'SpopError'
    this.code = code
    this.status = status
  }

  // instanceof keeps working across duplicated copies of the module (undici's trick).
  get [kSpopError](): true {
    return true
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kSpopError] === true
  }
}

/** The buffer ended before the structure did. In a complete frame this is an invalid frame. */
export const truncated = (what: string): SpopError =>
  new SpopError('ERR_SPOP_TRUNCATED', Status.INVALID, `truncated ${what}`)

export const invalid = (what: string): SpopError => new SpopError('ERR_SPOP_INVALID', Status.INVALID, what)
