// One syslog record as HAProxy sends it with `format rfc5424` (RFC 5424
// section 6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.
// The compact record travels in the structured data (SD), as one SD-ELEMENT
// with the SD-ID below; everything else in the record is skipped. Pure: a
// string in, a result out, never an exception, bounded work.
//
// Escaping (RFC 5424 section 6.3.3, HAProxy's `E` log-format flag): inside a
// PARAM-VALUE, `\"`, `\\` and `\]` stand for `"`, `\` and `]`; a backslash
// before any other character is kept with it. An unescaped `]` inside the
// quotes is accepted (values are delimited by their quotes).

/** The SD-ID of the compact record: IANA's example enterprise number (RFC 5612); the project has none of its own. */
export const SD_ID = 'spoa-tracer@32473'

/** At most this many parameters in one SD-ELEMENT: a record has about 25. */
export const MAX_PARAMS = 256
/** RFC 5424 allows 32 characters for a PARAM-NAME; a longer `tag.<key>` is accepted up to this. */
export const MAX_NAME = 128

export type SyslogResult =
  /** The compact record's parameters, in order. */
  | { kind: 'record'; params: Array<[string, string]> }
  /** A valid record without our element: a request HAProxy did not trace (HAProxy 2.6 logs every request). */
  | { kind: 'untraced' }
  /** HAProxy's own notice in a ring's stream: "<N> events dropped" (the ring was full). */
  | { kind: 'dropped'; count: number }
  | { kind: 'bad'; reason: 'not_rfc5424' | 'bad_sd' | 'truncated' | 'no_log_format' }

const NOT_5424: SyslogResult = { kind: 'bad', reason: 'not_rfc5424' }
const BAD_SD: SyslogResult = { kind: 'bad', reason: 'bad_sd' }
const TRUNCATED: SyslogResult = { kind: 'bad', reason: 'truncated' }
const UNTRACED: SyslogResult = { kind: 'untraced' }

const DROPPED = /^(\d{1,15}) events? dropped/
/** What HAProxy logs at accept time for a frontend without a log format: no request's log line will follow. */
const NO_LOG_FORMAT: SyslogResult = { kind: 'bad', reason: 'no_log_format' }

export function parseSyslog(s: string): SyslogResult {
  let end = s.length
  // A datagram ends with LF (HAProxy adds one); a ring's octet-counted frame does not.
  while (end > 0 && (s.charCodeAt(end - 1) === 10 || s.charCodeAt(end - 1) === 0)) end--
  // <PRI>VERSION SP: PRI is 1 to 3 digits, VERSION 1.
  if (s.charCodeAt(0) !== 60 /* < */) return NOT_5424
  let i = 1
  while (i < 4 && isDigit(s.charCodeAt(i))) i++
  if (i === 1 || s.charCodeAt(i) !== 62 /* > */ || s.charCodeAt(i + 1) !== 49 /* 1 */ || s.charCodeAt(i + 2) !== 32) return NOT_5424
  i += 3
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by one space.
  for (let field = 0; field < 5; field++) {
    const sp = s.indexOf(' ', i)
    if (sp < 0 || sp >= end) return i >= end ? TRUNCATED : NOT_5424
    if (sp === i) return NOT_5424
    i = sp + 1
  }
  if (i >= end) return TRUNCATED
  const c = s.charCodeAt(i)
  if (c === 45 /* - */) {
    if (i + 1 < end && s.charCodeAt(i + 1) !== 32) return BAD_SD
    const msg = i + 2 < end ? s.slice(i + 2, end) : ''
    const m = DROPPED.exec(msg)
    if (m !== null) return { kind: 'dropped', count: Number(m[1]) }
    return msg.startsWith('Connect from ') ? NO_LOG_FORMAT : UNTRACED
  }
  if (c !== 91 /* [ */) return BAD_SD
  let found: Array<[string, string]> | null = null
  while (i < end && s.charCodeAt(i) === 91) {
    const r = element(s, i + 1, end, found === null)
    if (typeof r === 'string') return r === 'truncated' ? TRUNCATED : BAD_SD
    if (r.params !== null) found = r.params
    i = r.next
  }
  if (i < end && s.charCodeAt(i) !== 32) return BAD_SD
  return found === null ? UNTRACED : { kind: 'record', params: found }
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57

/** A char that may appear in an SD-NAME: printable US-ASCII except `=`, space, `]`, `"`. */
const isNameChar = (c: number): boolean => c > 32 && c < 127 && c !== 61 && c !== 93 && c !== 34

/**
 * One SD-ELEMENT from just after its `[`. Its parameters are kept only when
 * its SD-ID is ours and `keep` is set (the first of ours wins); others are
 * only checked and skipped.
 */
function element(
  s: string,
  i: number,
  end: number,
  keep: boolean,
): { next: number; params: Array<[string, string]> | null } | 'truncated' | 'bad' {
  const idStart = i
  while (i < end && isNameChar(s.charCodeAt(i))) i++
  if (i >= end) return 'truncated'
  if (i === idStart || i - idStart > 32) return 'bad'
  const ours = keep && s.slice(idStart, i) === SD_ID
  const params: Array<[string, string]> | null = ours ? [] : null
  let count = 0
  // The next backslash at or after i (-1: none left), looked up again only once passed.
  let b = -2
  for (;;) {
    if (i >= end) return 'truncated'
    const c = s.charCodeAt(i)
    if (c === 93 /* ] */) return { next: i + 1, params }
    if (c !== 32) return 'bad'
    i++
    const nameStart = i
    while (i < end && isNameChar(s.charCodeAt(i))) i++
    if (i >= end) return 'truncated'
    if (i === nameStart || i - nameStart > MAX_NAME || s.charCodeAt(i) !== 61 /* = */) return 'bad'
    const name = params !== null ? s.slice(nameStart, i) : ''
    i++
    if (i >= end) return 'truncated'
    if (s.charCodeAt(i) !== 34 /* " */) return 'bad'
    i++
    // The value runs to the first quote not escaped by a backslash.
    let value = ''
    let from = i
    for (;;) {
      const q = s.indexOf('"', i)
      if (b !== -1 && b < i) b = s.indexOf('\\', i)
      if (q < 0 || q >= end) return 'truncated'
      if (b < 0 || b > q) {
        if (params !== null) value += s.slice(from, q)
        i = q + 1
        break
      }
      // A backslash before the closing quote: it escapes the next character.
      if (b + 1 >= end) return 'truncated'
      const next = s.charCodeAt(b + 1)
      if (params !== null) {
        value += s.slice(from, b)
        value += next === 34 || next === 92 || next === 93 ? s[b + 1] : s.slice(b, b + 2)
      }
      i = b + 2
      from = i
    }
    if (++count > MAX_PARAMS) return 'bad'
    if (params !== null) params.push([name, value])
  }
}
