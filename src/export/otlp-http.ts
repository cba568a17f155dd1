// One OTLP/HTTP export request: POST an encoded ExportTraceServiceRequest,
// read the answer, and say whether it worked and whether it is worth sending
// again (OTLP/HTTP spec: 429, 502, 503, 504 and network errors are; other
// statuses are not; Retry-After is honoured). There are no retries in here:
// the span queue retries (span-queue.ts), so that every failed attempt is
// seen, counted and logged the moment it fails, and one policy decides.
// Runs in an export worker; plain node:http, nothing from OpenTelemetry.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'

const gzipAsync = promisify(gzip)

/** A collector's answer is read up to this much; more is cut off (the body only matters for errors). */
const MAX_RESPONSE_BYTES = 64 * 1024
/** Retry-After is capped: a collector asking for an hour gets the queue's own backoff ceiling. */
const MAX_RETRY_AFTER_MS = 5 * 60_000
const RETRYABLE_STATUS = new Set([429, 502, 503, 504])
const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED'])

export interface OtlpHttpOptions {
  /** The full traces URL; userinfo, if any, becomes Basic authentication. */
  url: string
  contentType: 'application/x-protobuf' | 'application/json'
  headers: Record<string, string>
  compression: 'none' | 'gzip'
  /** One request, connecting included. */
  timeoutMs: number
  /** Requests in flight at most (sockets kept). */
  maxConcurrent: number
  userAgent: string
}

export interface SendResult {
  ok: boolean
  /** Why it failed, in one line (no URL: the caller names the endpoint, redacted). */
  error?: string
  /** Worth sending again later. */
  retryable: boolean
  /** The collector's Retry-After, when it gave one. */
  retryAfterMs?: number
  /** A 2xx answer that still rejected spans (OTLP partial success), in one line. */
  warning?: string
}

export class OtlpHttpTransport {
  private readonly url: URL
  private readonly agent: HttpAgent
  private readonly request: typeof httpRequest
  private readonly headers: Record<string, string>

  constructor(private readonly o: OtlpHttpOptions) {
    this.url = new URL(o.url)
    const https = this.url.protocol === 'https:'
    const agentOptions = { keepAlive: true, maxSockets: Math.max(1, o.maxConcurrent) }
    this.agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions)
    this.request = https ? httpsRequest : httpRequest
    // The configured headers, then ours: they must not be overridden.
    this.headers = { ...o.headers, 'Content-Type': o.contentType, 'User-Agent': o.userAgent }
    if (o.compression === 'gzip') this.headers['Content-Encoding'] = 'gzip'
  }

  async send(body: Uint8Array): Promise<SendResult> {
    let payload: Uint8Array
    try {
      payload = this.o.compression === 'gzip' ? await gzipAsync(body) : body
    } catch (err) {
      return { ok: false, retryable: false, error: `cannot compress the request: ${(err as Error).message}` }
    }
    return new Promise<SendResult>((resolve) => {
      let settled = false
      const settle = (r: SendResult): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(r)
      }
      const req = this.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: { ...this.headers, 'Content-Length': String(payload.byteLength) },
      })
      const timer = setTimeout(() => {
        settle({ ok: false, retryable: true, error: `no answer within ${this.o.timeoutMs} ms (--export-timeout)` })
        req.destroy()
      }, this.o.timeoutMs)
      req.on('error', (err: NodeJS.ErrnoException) => {
        settle({ ok: false, retryable: err.code !== undefined && RETRYABLE_NETWORK.has(err.code), error: err.message })
      })
      req.on('response', (res) => {
        readLimited(res, (data) => settle(answer(res, data)), (err) => settle({ ok: false, retryable: true, error: `answer cut off: ${err.message}` }))
      })
      req.end(payload)
    })
  }

  /** Closes the kept sockets: nothing of this transport keeps a thread alive after. */
  shutdown(): void {
    this.agent.destroy()
  }
}

function readLimited(res: IncomingMessage, done: (data: Buffer) => void, failed: (err: Error) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  res.on('data', (c: Buffer) => {
    if (size >= MAX_RESPONSE_BYTES) return
    chunks.push(c)
    size += c.length
  })
  res.on('end', () => done(Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES)))
  res.on('error', failed)
}

function answer(res: IncomingMessage, data: Buffer): SendResult {
  const status = res.statusCode ?? 0
  if (status >= 200 && status < 300) {
    const rejected = partialSuccess(res, data)
    return rejected === null ? { ok: true, retryable: false } : { ok: true, retryable: false, warning: rejected }
  }
  const detail = errorText(res, data)
  const r: SendResult = { ok: false, retryable: RETRYABLE_STATUS.has(status), error: `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}${detail}` }
  const after = retryAfterMs(res.headers['retry-after'])
  if (r.retryable && after !== undefined) r.retryAfterMs = after
  return r
}

/** Retry-After: seconds, or an HTTP date. */
export function retryAfterMs(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined || v.trim() === '') return undefined
  const s = v.trim()
  const ms = /^\d+$/.test(s) ? Number(s) * 1000 : Date.parse(s) - now
  if (!Number.isFinite(ms)) return undefined
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms))
}

/** A short, one-line reason from an error answer: a JSON `message` or plain text; nothing from binary bodies. */
function errorText(res: IncomingMessage, data: Buffer): string {
  const type = String(res.headers['content-type'] ?? '')
  let text = ''
  if (type.includes('json')) {
    try {
      const m = (JSON.parse(data.toString('utf8')) as { message?: unknown }).message
      if (typeof m === 'string') text = m
    } catch {
      // Not JSON after all: nothing to add.
    }
  } else if (type.startsWith('text/')) {
    text = data.toString('utf8')
  } else if (type.includes('protobuf')) {
    text = field(data, 2)?.toString('utf8') ?? '' // google.rpc.Status { 2 message }
  }
  text = text.replace(/\s+/g, ' ').trim().slice(0, 200)
  return text === '' ? '' : `: ${text}`
}

/** OTLP partial success: "collector rejected N spans: why", or null when all were accepted. */
function partialSuccess(res: IncomingMessage, data: Buffer): string | null {
  if (data.length === 0) return null
  let rejected = 0
  let why = ''
  if (String(res.headers['content-type'] ?? '').includes('json')) {
    try {
      const p = (JSON.parse(data.toString('utf8')) as { partialSuccess?: { rejectedSpans?: unknown; errorMessage?: unknown } }).partialSuccess
      rejected = Number(p?.rejectedSpans ?? 0)
      why = typeof p?.errorMessage === 'string' ? p.errorMessage : ''
    } catch {
      return null
    }
  } else {
    // ExportTraceServiceResponse { 1 partial_success { 1 rejected_spans, 2 error_message } }
    const ps = field(data, 1)
    if (ps === null) return null
    rejected = fieldVarint(ps, 1)
    const msg = field(ps, 2)
    why = msg === null ? '' : msg.toString('utf8')
  }
  if (!(rejected > 0) && why === '') return null
  return `collector rejected ${rejected} span(s)${why ? `: ${why.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`
}

/** The first length-delimited field `no` of a protobuf message, or null. */
function field(data: Buffer, no: number): Buffer | null {
  let found: Buffer | null = null
  walk(data, (n, wire, value) => {
    if (found === null && n === no && wire === 2 && Buffer.isBuffer(value)) found = value
  })
  return found
}

function fieldVarint(data: Buffer, no: number): number {
  let v = 0
  walk(data, (n, wire, value) => {
    if (n === no && wire === 0 && typeof value === 'number') v = value
  })
  return v
}

function walk(data: Buffer, onField: (no: number, wire: number, value: number | Buffer) => void): void {
  let pos = 0
  const varint = (): number => {
    let v = 0
    for (let shift = 0; pos < data.length && shift < 49; shift += 7) {
      const b = data[pos++]!
      v += (b & 0x7f) * 2 ** shift
      if (b < 0x80) return v
    }
    return -1
  }
  while (pos < data.length) {
    const tag = varint()
    if (tag < 0) return
    const no = Math.floor(tag / 8)
    const wire = tag & 7
    if (wire === 0) {
      const v = varint()
      if (v < 0) return
      onField(no, wire, v)
    } else if (wire === 2) {
      const len = varint()
      if (len < 0 || pos + len > data.length) return
      onField(no, wire, data.subarray(pos, pos + len))
      pos += len
    } else if (wire === 1) pos += 8
    else if (wire === 5) pos += 4
    else return
  }
}
