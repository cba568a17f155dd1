// NOTIFY payload templates for the load generator. A template is the
// LIST-OF-MESSAGES bytes of one NOTIFY, encoded once with the project's codec;
// per frame the load generator only copies it behind a fresh frame header.
// A flow is the sequence of NOTIFYs of one request (one per SPOE event, in
// order); every request gets its own unique-id, written over the placeholder
// at offsets found once here, so an agent that keys state by unique-id (the
// tracer) sees distinct requests, as it would behind HAProxy.

import { randomBytes } from 'node:crypto'
import { type Message, type NamedValue, tv, Writer, writeMessages } from '../src/spop/index.js'

export interface NotifyTemplate {
  /** The NOTIFY payload: what follows the frame-id. */
  readonly payload: Buffer
  /** Offsets in `payload` of the 12 hex digits that carry the request number (unique-id suffixes). */
  readonly idPatches: readonly number[]
}

/** The NOTIFYs of one request, sent one after the other: the next leaves when the previous is ACKed. */
export type Flow = readonly NotifyTemplate[]

/** Hex digits of the request number at the end of each unique-id. */
export const ID_SUFFIX_LENGTH = 12

const rnd = randomBytes(8).toString('hex')
/**
 * The unique-id placeholder to put in messages: 36 characters shaped like
 * HAProxy's `%[uuid]`. The first 24 are random per process, so they cannot
 * occur by accident elsewhere in a payload; the last 12 are replaced per request.
 */
export const UNIQUE_ID = `${rnd.slice(0, 8)}-${rnd.slice(8, 12)}-4${rnd.slice(12, 15)}-8${rnd.slice(13, 16)}-${'0'.repeat(ID_SUFFIX_LENGTH)}`
const ID_PREFIX = Buffer.from(UNIQUE_ID.slice(0, UNIQUE_ID.length - ID_SUFFIX_LENGTH))

/** Encodes one NOTIFY payload and finds the unique-id placeholders in it. */
export function buildTemplate(messages: readonly Message[]): NotifyTemplate {
  const w = new Writer(1024)
  writeMessages(w, messages)
  const payload = w.take()
  const idPatches: number[] = []
  for (let at = payload.indexOf(ID_PREFIX); at >= 0; at = payload.indexOf(ID_PREFIX, at + 1)) {
    idPatches.push(at + ID_PREFIX.length)
  }
  return { payload, idPatches }
}

/**
 * A flow from the message lists of its NOTIFYs (the hook for replaying a
 * multi-event tracing request): `[[m1, m2], [m3], ...]` is a request whose
 * first NOTIFY carries m1 and m2, its second m3, and so on. Use UNIQUE_ID as
 * the value of every argument that should hold the request's unique-id.
 */
export function buildFlow(notifies: readonly (readonly Message[])[]): Flow {
  if (notifies.length === 0) throw new RangeError('a flow needs at least one NOTIFY')
  return notifies.map(buildTemplate)
}

// One message in the spoa-opentracing grammar: `id=unique-id`, a span and its
// parent, tags whose value follows as an unnamed argument (`tag=str("k") sample`),
// with string, ipv4 and int64 samples as HAProxy sends them.
const BASE_ARGS: readonly NamedValue[] = [
  { name: 'id', ...tv.string(UNIQUE_ID) },
  { name: 'span', ...tv.string('Frontend HTTP request') },
  { name: 'child-of', ...tv.string('Client session') },
  { name: 'tag', ...tv.string('http.method') },
  { name: '', ...tv.string('GET') },
  { name: 'tag', ...tv.string('net.peer.ip') },
  { name: '', ...tv.ipv4('192.168.1.10') },
  { name: 'tag', ...tv.string('net.peer.port') },
  { name: '', ...tv.int64(54321) },
  { name: 'finish', ...tv.string('Frontend TCP request') },
]
// Cycled to go beyond ten arguments.
const EXTRA_ARGS: readonly NamedValue[] = [
  { name: 'tag', ...tv.string('http.url') },
  { name: '', ...tv.string('/api/v1/items?id=42&sort=asc') },
  { name: 'tag', ...tv.string('http.status_code') },
  { name: '', ...tv.int64(200) },
  { name: 'baggage', ...tv.string('haproxy_id') },
  { name: '', ...tv.string(UNIQUE_ID) },
]

export const MAX_ARGS = 255

/** A `nArgs`-argument message of the spoa-opentracing shape. */
export function defaultMessage(nArgs: number, name = 'opentracing:frontend_http_request'): Message {
  if (!Number.isInteger(nArgs) || nArgs < 0 || nArgs > MAX_ARGS) throw new RangeError(`arguments: 0 to ${MAX_ARGS}`)
  const args: NamedValue[] = []
  for (let i = 0; i < nArgs; i++) {
    args.push(i < BASE_ARGS.length ? BASE_ARGS[i]! : EXTRA_ARGS[(i - BASE_ARGS.length) % EXTRA_ARGS.length]!)
  }
  return { name, args }
}

/** The default single-NOTIFY flow: `messages` messages of `args` arguments each. */
export function defaultFlow(args: number, messages: number): Flow {
  const list: Message[] = []
  if (messages === 1) list.push(defaultMessage(args))
  else for (let i = 0; i < messages; i++) list.push(defaultMessage(args, `opentracing:event_${i + 1}`))
  return buildFlow([list])
}

const HEX = Buffer.from('0123456789abcdef')

/** Writes `n` (< 2^48) as 12 lowercase hex digits at `at`. */
export function writeIdSuffix(buf: Buffer, at: number, n: number): void {
  // Two 24-bit halves keep the digit loop in integer arithmetic.
  let lo = n % 0x1000000
  let hi = (n - lo) / 0x1000000
  for (let i = ID_SUFFIX_LENGTH - 1; i >= 6; i--) {
    buf[at + i] = HEX[lo & 15]!
    lo >>>= 4
  }
  for (let i = 5; i >= 0; i--) {
    buf[at + i] = HEX[hi & 15]!
    hi >>>= 4
  }
}
