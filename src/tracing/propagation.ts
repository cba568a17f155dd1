// Trace context in and out of HTTP headers, as pure functions: W3C Trace
// Context (traceparent, tracestate), W3C Baggage, B3 (single header and
// multi-header) and Jaeger (uber-trace-id). Which ones are honoured follows
// OTEL_PROPAGATORS (default "tracecontext,baggage"). Invalid input is never
// an error: it yields no context and a reason, counted by the caller.

export const PROPAGATORS = ['tracecontext', 'baggage', 'b3', 'b3multi', 'jaeger'] as const
export type Propagator = (typeof PROPAGATORS)[number]

export interface SpanContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string
  /** 16 lowercase hex digits, not all zero. */
  spanId: string
  sampled: boolean
  /** The raw W3C tracestate, when it came with a traceparent. */
  traceState: string
  /** B3 debug ("d", X-B3-Flags: 1): trace this request whatever the sampler says. */
  debug?: true
}

/**
 * What the request says about sampling: a parent's sampled flag, or a
 * decision that came without ids (B3 `b3: 0`, `b3: 1`, `b3: d`, or
 * X-B3-Sampled / X-B3-Flags alone). debug: B3's "force trace".
 */
export interface UpstreamSampling {
  sampled: boolean
  debug: boolean
}

export interface Extracted {
  context: SpanContext | null
  /** Which propagator produced the context. */
  from: Propagator | null
  /**
   * The upstream's sampling decision: from the first configured propagator
   * that has a context or a decision without ids. Null when none says anything.
   */
  sampling: UpstreamSampling | null
  baggage: Map<string, string>
  /** Why a context header that was present could not be used (for a counter). */
  invalid: string | null
}

/** Header name (lowercase) -> value, as the grammar collects them from `extract=` arguments. */
export type Carrier = Map<string, string>

const HEX32 = /^[0-9a-f]{32}$/
const HEX16 = /^[0-9a-f]{16}$/
const ZERO32 = '0'.repeat(32)
const ZERO16 = '0'.repeat(16)

/** A sampling decision without a context (B3 only). */
interface Decision {
  decision: UpstreamSampling
}

type Parsed = SpanContext | Decision | string // a context, a decision alone, or why the header is invalid

/**
 * W3C traceparent: version-traceid-parentid-flags. Version ff is invalid;
 * a future version may carry more fields after the flags (they are ignored);
 * version 00 must have exactly four fields. Uppercase hex is invalid.
 */
export function parseTraceparent(header: string, tracestate = ''): SpanContext | string {
  // The common case, version 00 exactly as sent, checked without splitting
  // or regular expressions (every compact message has one); anything else,
  // valid or not, takes the general path below, which names the reason.
  if (
    header.length === 55 &&
    header.charCodeAt(0) === 48 && // '0'
    header.charCodeAt(1) === 48 &&
    header.charCodeAt(2) === 45 && // '-'
    header.charCodeAt(35) === 45 &&
    header.charCodeAt(52) === 45 &&
    lowerHex(header, 3, 35) &&
    lowerHex(header, 36, 52) &&
    lowerHex(header, 53, 55)
  ) {
    const traceId = header.slice(3, 35)
    const spanId = header.slice(36, 52)
    if (traceId !== ZERO32 && spanId !== ZERO16) {
      const flags = hexDigit(header.charCodeAt(54))
      return { traceId, spanId, sampled: (flags & 1) === 1, traceState: validTracestate(tracestate) }
    }
  }
  const v = header.trim()
  const parts = v.split('-')
  if (parts.length < 4) return 'malformed'
  const [version, traceId, spanId, flags] = parts as [string, string, string, string]
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return 'bad_version'
  if (version === '00' && parts.length !== 4) return 'malformed'
  if (!HEX32.test(traceId) || !HEX16.test(spanId) || !/^[0-9a-f]{2}$/.test(flags)) return 'malformed'
  if (traceId === ZERO32 || spanId === ZERO16) return 'zero_id'
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, traceState: validTracestate(tracestate) }
}

/** Whether s[from, to) is all lowercase hex digits. */
function lowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false
  }
  return true
}

/** The value of a lowercase hex digit's char code. */
const hexDigit = (c: number): number => (c <= 57 ? c - 48 : c - 87)

/** tracestate is passed on as received when it is well-formed enough (at most 32 list members, 512 chars). */
function validTracestate(s: string): string {
  const t = s.trim()
  if (t === '' || t.length > 512) return ''
  const members = t.split(',').map((m) => m.trim()).filter(Boolean)
  if (members.length > 32 || members.some((m) => !/^[a-z0-9][_0-9a-z\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/.test(m))) {
    return ''
  }
  return members.join(',')
}

export function formatTraceparent(c: SpanContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`
}

/** 64-bit B3/Jaeger trace ids are left-padded to 128 bits. */
const pad128 = (id: string): string => id.padStart(32, '0')

/**
 * B3 single header: traceid-spanid[-sampled[-parentspanid]], or just a
 * sampling decision ("0" deny, "1" accept, "d" debug), which is not a
 * context but is honoured as the upstream's decision.
 */
export function parseB3(header: string): SpanContext | Decision | string {
  const v = header.trim().toLowerCase()
  if (v === '0' || v === '1' || v === 'd') return { decision: { sampled: v !== '0', debug: v === 'd' } }
  const parts = v.split('-')
  if (parts.length < 2 || parts.length > 4) return 'malformed'
  const [traceId, spanId, sampled] = parts as [string, string, string | undefined]
  if (!/^[0-9a-f]{16}$|^[0-9a-f]{32}$/.test(traceId) || !HEX16.test(spanId)) return 'malformed'
  const t = pad128(traceId)
  if (t === ZERO32 || spanId === ZERO16) return 'zero_id'
  if (sampled !== undefined && !['0', '1', 'd'].includes(sampled)) return 'malformed'
  const c: SpanContext = { traceId: t, spanId, sampled: sampled !== '0', traceState: '' }
  if (sampled === 'd') c.debug = true
  return c
}

export function formatB3(c: SpanContext): string {
  return `${c.traceId}-${c.spanId}-${c.sampled ? '1' : '0'}`
}

/**
 * B3 multi-header: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled / X-B3-Flags.
 * X-B3-Sampled or X-B3-Flags without ids is a decision alone.
 */
export function parseB3Multi(carrier: Carrier): SpanContext | Decision | string | null {
  const traceId = carrier.get('x-b3-traceid')
  const spanId = carrier.get('x-b3-spanid')
  const debug = carrier.get('x-b3-flags')?.trim() === '1'
  const sampledHeader = carrier.get('x-b3-sampled')?.trim().toLowerCase()
  if (traceId === undefined && spanId === undefined) {
    if (debug) return { decision: { sampled: true, debug: true } }
    if (sampledHeader === '1' || sampledHeader === 'true') return { decision: { sampled: true, debug: false } }
    if (sampledHeader === '0' || sampledHeader === 'false') return { decision: { sampled: false, debug: false } }
    return sampledHeader === undefined || sampledHeader === '' ? null : 'malformed'
  }
  const t = (traceId ?? '').trim().toLowerCase()
  const s = (spanId ?? '').trim().toLowerCase()
  if (!/^[0-9a-f]{16}$|^[0-9a-f]{32}$/.test(t) || !HEX16.test(s)) return 'malformed'
  if (pad128(t) === ZERO32 || s === ZERO16) return 'zero_id'
  const sampled = debug || sampledHeader === undefined || sampledHeader === '1' || sampledHeader === 'true'
  const c: SpanContext = { traceId: pad128(t), spanId: s, sampled, traceState: '' }
  if (debug) c.debug = true
  return c
}

/** Jaeger uber-trace-id: traceid:spanid:parentid:flags (hex; ids may be shorter, zero-padded). */
export function parseJaeger(header: string): SpanContext | string {
  const v = decodeURIComponentSafe(header.trim()).toLowerCase()
  const parts = v.split(':')
  if (parts.length !== 4) return 'malformed'
  const [traceId, spanId, , flags] = parts as [string, string, string, string]
  if (!/^[0-9a-f]{1,32}$/.test(traceId) || !/^[0-9a-f]{1,16}$/.test(spanId) || !/^[0-9a-f]{1,2}$/.test(flags)) return 'malformed'
  const t = pad128(traceId)
  const s = spanId.padStart(16, '0')
  if (t === ZERO32 || s === ZERO16) return 'zero_id'
  return { traceId: t, spanId: s, sampled: (parseInt(flags, 16) & 1) === 1, traceState: '' }
}

export function formatJaeger(c: SpanContext): string {
  return `${c.traceId}:${c.spanId}:0:${c.sampled ? '1' : '0'}`
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

const BAGGAGE_MAX_MEMBERS = 180
const BAGGAGE_MAX_BYTES = 8192

/** W3C baggage: key=value[;properties], comma-separated, values percent-encoded. */
export function parseBaggage(header: string): Map<string, string> {
  const out = new Map<string, string>()
  if (header.length > BAGGAGE_MAX_BYTES) return out
  for (const member of header.split(',')) {
    if (out.size >= BAGGAGE_MAX_MEMBERS) break
    const kv = member.split(';')[0]!
    const eq = kv.indexOf('=')
    if (eq <= 0) continue
    const key = kv.slice(0, eq).trim()
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) continue
    out.set(key, decodeURIComponentSafe(kv.slice(eq + 1).trim()))
  }
  return out
}

export function formatBaggage(b: ReadonlyMap<string, string>): string {
  const members: string[] = []
  let size = 0
  for (const [k, v] of b) {
    const m = `${k}=${encodeURIComponent(v)}`
    if (members.length >= BAGGAGE_MAX_MEMBERS || size + m.length + 1 > BAGGAGE_MAX_BYTES) break
    members.push(m)
    size += m.length + 1
  }
  return members.join(',')
}

/**
 * Extracts a context from the carrier with the configured propagators, in
 * order: the first valid context wins. Baggage comes from the W3C baggage
 * header when `baggage` is configured.
 */
export function extract(carrier: Carrier, propagators: readonly Propagator[]): Extracted {
  const result: Extracted = { context: null, from: null, sampling: null, baggage: new Map(), invalid: null }
  const take = (p: Propagator, parsed: Parsed | null): void => {
    if (parsed === null || result.context !== null) return
    if (typeof parsed === 'string') result.invalid ??= `${p}:${parsed}`
    else if ('decision' in parsed) result.sampling ??= parsed.decision
    else {
      result.context = parsed
      result.from = p
      result.sampling ??= { sampled: parsed.sampled, debug: parsed.debug === true }
    }
  }
  for (const p of propagators) {
    switch (p) {
      case 'tracecontext': {
        const tp = carrier.get('traceparent')
        if (tp !== undefined && tp !== '') take(p, parseTraceparent(tp, carrier.get('tracestate') ?? ''))
        break
      }
      case 'b3': {
        const b3 = carrier.get('b3')
        if (b3 !== undefined && b3 !== '') take(p, parseB3(b3))
        break
      }
      case 'b3multi':
        take(p, parseB3Multi(carrier))
        break
      case 'jaeger': {
        const u = carrier.get('uber-trace-id')
        if (u !== undefined && u !== '') take(p, parseJaeger(u))
        break
      }
      case 'baggage': {
        const b = carrier.get('baggage')
        if (b !== undefined && b !== '') result.baggage = parseBaggage(b)
        break
      }
    }
  }
  return result
}

/** One variable to set in HAProxy: its name (after the agent's var-prefix) and value. */
export interface InjectedVar {
  name: string
  value: string
}

/**
 * How much a variable of inject() matters, 0 most: the context itself in
 * each format, then tracestate, then baggage (the largest and least needed).
 * An ACK that would exceed max-frame-size loses its least important
 * variables first (the agent drops actions from the end).
 */
export function injectRank(name: string): number {
  return name === 'baggage' ? 2 : name === 'tracestate' ? 1 : 0
}

/**
 * The variables that carry `c` (and baggage) in each configured format.
 * HAProxy variable names allow only [a-zA-Z0-9._], hence x_b3_traceid and
 * uber_trace_id.
 */
export function inject(c: SpanContext, baggage: ReadonlyMap<string, string> | null, propagators: readonly Propagator[]): InjectedVar[] {
  const out: InjectedVar[] = []
  for (const p of propagators) {
    switch (p) {
      case 'tracecontext':
        out.push({ name: 'traceparent', value: formatTraceparent(c) })
        if (c.traceState !== '') out.push({ name: 'tracestate', value: c.traceState })
        break
      case 'baggage':
        if (baggage !== null && baggage.size > 0) out.push({ name: 'baggage', value: formatBaggage(baggage) })
        break
      case 'b3':
        out.push({ name: 'b3', value: formatB3(c) })
        break
      case 'b3multi':
        out.push(
          { name: 'x_b3_traceid', value: c.traceId },
          { name: 'x_b3_spanid', value: c.spanId },
          { name: 'x_b3_sampled', value: c.sampled ? '1' : '0' },
        )
        break
      case 'jaeger':
        out.push({ name: 'uber_trace_id', value: formatJaeger(c) })
        break
    }
  }
  return out
}

/** Parses OTEL_PROPAGATORS; "none" means no propagation. Unknown names are errors for the caller to report. */
export function parsePropagators(s: string): { propagators: Propagator[]; unknown: string[] } {
  const names = s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean)
  if (names.includes('none')) return { propagators: [], unknown: [] }
  const unknown = names.filter((n) => !(PROPAGATORS as readonly string[]).includes(n))
  return { propagators: [...new Set(names.filter((n) => !unknown.includes(n)))] as Propagator[], unknown }
}
