// The seam between the SPOP agent and what it is used for. The agent decodes
// a NOTIFY, calls the handler, and sends back whatever actions it returns in
// the ACK. Tracing is one handler; tests use trivial ones.

import type { Action, Message, Uint64 } from '../spop/index.js'

export interface NotifyContext {
  /** HAProxy's engine-id from the HELLO (per SPOE engine and thread on 2.x, per agent on 3.x). */
  readonly engineId: string | null
  readonly streamId: Uint64
  readonly frameId: Uint64
  /** Bytes of the frame (all its fragments) the messages were decoded from: what holding them costs, roughly. */
  readonly size: number
  /**
   * The bytes the messages were decoded from: the frame's body, or the
   * payload reassembled from its fragments; its LIST-OF-MESSAGES starts at
   * `messagesAt`. Valid only during the call: copy what is kept. (Two
   * fields rather than a view: no allocation per NOTIFY for handlers that
   * never look.)
   */
  readonly frame: Buffer
  readonly messagesAt: number
}

/**
 * Called once per NOTIFY. Return the actions synchronously whenever possible:
 * a returned promise delays this one ACK (others on the connection go on, out
 * of order, when pipelining is on), and HAProxy gives up on it after its
 * `timeout processing`. A throw or rejection is logged and answered with an
 * empty ACK: a bug in a handler must not cost HAProxy the connection.
 * List actions most important first: an ACK that would exceed the negotiated
 * max-frame-size is sent without its last actions (counted and logged).
 */
export type NotifyHandler = (messages: Message[], ctx: NotifyContext) => Action[] | Promise<Action[]>
