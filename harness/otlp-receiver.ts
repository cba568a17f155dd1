// An OTLP/HTTP trace receiver in the test's own process: POST /v1/traces,
// OTLP/JSON or OTLP/protobuf, gzip or not, decoded (otlp-decode.ts) into the
// spans it keeps; faults injected into the reply (a status, Retry-After, a
// delay); waits for what arrives. Listens on 127.0.0.1 only; every wait is
// bounded.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { decodeJsonRequest, decodeProtobufRequest, OtlpDecodeError, type ReceivedSpan } from './otlp-decode.js'

export * from './otlp-decode.js'

const JSON_TYPE = 'application/json'
const PROTOBUF_TYPE = 'application/x-protobuf'

export interface ResponseSpec {
  /** HTTP status; default 200. A non-2xx status rejects the request's spans. */
  status?: number
  retryAfterSeconds?: number
  delayMs?: number
  /** Replaces the default body (an empty ExportTraceServiceResponse, or a Status on errors). */
  body?: string
}

export interface ReceivedRequest {
  contentType: string
  encoding: string
  /** Body size on the wire (before gunzip). */
  bytes: number
  spanCount: number
  status: number
  /** The decompressed body, kept only with `keepBodies`. */
  body?: Buffer
}

export interface OtlpReceiverOptions {
  /** Listen on this port (a collector coming back where it was); default: a free one. */
  port?: number
  /** Cap on the body, both on the wire and after gunzip; default 32 MiB. */
  maxBodyBytes?: number
  keepBodies?: boolean
  response?: ResponseSpec
}

interface Waiter {
  done: () => boolean
  resolve: () => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

const isOk = (status: number): boolean => status >= 200 && status < 300

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  readonly requests: ReceivedRequest[] = []
  acceptedRequests = 0
  rejectedRequests = 0
  invalidRequests = 0
  url = ''
  tracesUrl = ''

  private response: ResponseSpec
  private readonly server: Server
  private readonly maxBodyBytes: number
  private readonly keepBodies: boolean
  private readonly port: number
  private readonly waiters = new Set<Waiter>()
  private readonly sleepers = new Set<() => void>()
  private closed = false

  constructor(opts: OtlpReceiverOptions = {}) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 32 * 1024 * 1024
    this.keepBodies = opts.keepBodies ?? false
    this.port = opts.port ?? 0
    this.response = { ...opts.response }
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.send(res, 500, 'text/plain', String(err))
        else res.destroy()
      })
    })
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}`
    this.tracesUrl = `${this.url}/v1/traces`
    return this
  }

  /** Replaces the reply for subsequent requests; `setResponse()` restores the default 200. */
  setResponse(spec: ResponseSpec = {}): void {
    this.response = { ...spec }
  }

  clear(): void {
    this.spans.length = 0
    this.requests.length = 0
    this.acceptedRequests = this.rejectedRequests = this.invalidRequests = 0
  }

  spanNamed(name: string): ReceivedSpan {
    const s = this.spans.find((x) => x.name === name)
    if (!s) throw new Error(`no span named ${JSON.stringify(name)}; have ${this.describeSpans()}`)
    return s
  }

  async waitForSpans(n: number, timeoutMs = 5000): Promise<ReceivedSpan[]> {
    await this.waitFor(() => this.spans.length >= n, timeoutMs, () => `waitForSpans(${n})`)
    return this.spans.slice()
  }

  /** The first span received that matches `match`, waiting for it at most `timeoutMs`. */
  async waitForSpan(match: (s: ReceivedSpan) => boolean, timeoutMs = 5000): Promise<ReceivedSpan> {
    await this.waitFor(() => this.spans.some(match), timeoutMs, () => 'waitForSpan(...)')
    return this.spans.find(match)!
  }

  /** Waits for n answered requests, accepted or not (rejections add no spans). */
  async waitForRequests(n: number, timeoutMs = 5000): Promise<ReceivedRequest[]> {
    await this.waitFor(() => this.requests.length >= n, timeoutMs, () => `waitForRequests(${n})`)
    return this.requests.slice()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const wake of this.sleepers) wake()
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(new Error(`otlp receiver closed while waiting; ${this.describe()}`))
    }
    this.waiters.clear()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve()
    if (this.closed) return Promise.reject(new Error(`${what()}: otlp receiver is closed`))
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        done,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w)
          reject(new Error(`${what()} timed out after ${timeoutMs} ms; ${this.describe()}`))
        }, timeoutMs),
      }
      this.waiters.add(w)
    })
  }

  private notify(): void {
    for (const w of this.waiters) {
      if (!w.done()) continue
      clearTimeout(w.timer)
      this.waiters.delete(w)
      w.resolve()
    }
  }

  private describeSpans(): string {
    const kinds = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer']
    return `[${this.spans.map((s) => `${JSON.stringify(s.name)} ${kinds[s.kind] ?? s.kind} ${s.spanId}`).join(', ')}]`
  }

  private describe(): string {
    const reqs = this.requests.map((r) => `${r.status} ${r.contentType || '-'}${r.encoding === 'identity' ? '' : `+${r.encoding}`} ${r.spanCount} span(s)`)
    return `received ${this.spans.length} span(s) ${this.describeSpans()} in ${this.requests.length} request(s) [${reqs.join(', ')}]`
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.sleepers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.sleepers.add(wake)
    })
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...headers })
    res.end(body)
  }

  private invalid(res: ServerResponse, rec: ReceivedRequest, status: number, msg: string, headers: Record<string, string> = {}): void {
    this.invalidRequests++
    this.requests.push({ ...rec, status })
    this.send(res, status, 'text/plain', `${msg}\n`, headers)
    this.notify()
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const spec = this.response
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    const rec: ReceivedRequest = { contentType, encoding, bytes: 0, spanCount: 0, status: 0 }

    if ((req.url ?? '').split('?')[0] !== '/v1/traces') return this.invalid(res, rec, 404, `no such endpoint: ${req.url}`)
    if (req.method !== 'POST') return this.invalid(res, rec, 405, `${req.method} not allowed`, { allow: 'POST' })
    if (contentType !== JSON_TYPE && contentType !== PROTOBUF_TYPE) {
      return this.invalid(res, rec, 415, `unsupported content-type ${JSON.stringify(contentType)}`)
    }
    if (encoding !== 'identity' && encoding !== 'gzip') {
      return this.invalid(res, rec, 415, `unsupported content-encoding ${JSON.stringify(encoding)}`)
    }

    const tooLarge = (): void =>
      this.invalid(res, rec, 413, `body exceeds ${this.maxBodyBytes} bytes`, { connection: 'close' })
    const wire = await readBody(req, this.maxBodyBytes)
    if (wire === null) return tooLarge()
    rec.bytes = wire.length

    let body = wire
    if (encoding === 'gzip') {
      try {
        body = await promisify(gunzip)(wire, { maxOutputLength: this.maxBodyBytes })
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return tooLarge()
        return this.invalid(res, rec, 400, `bad gzip body: ${(err as Error).message}`)
      }
    }
    if (this.keepBodies) rec.body = body

    let spans: ReceivedSpan[]
    try {
      spans = contentType === JSON_TYPE ? decodeJsonRequest(body) : decodeProtobufRequest(body)
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err
      return this.invalid(res, rec, 400, err.message)
    }
    rec.spanCount = spans.length

    if (spec.delayMs) await this.sleep(spec.delayMs)
    if (this.closed) return

    const status = spec.status ?? 200
    rec.status = status
    if (isOk(status)) {
      this.acceptedRequests++
      this.spans.push(...spans)
    } else {
      this.rejectedRequests++
    }
    this.requests.push(rec)

    const headers: Record<string, string> = {}
    if (spec.retryAfterSeconds !== undefined) headers['retry-after'] = String(spec.retryAfterSeconds)
    this.send(res, status, contentType, spec.body ?? defaultBody(contentType, status), headers)
    this.notify()
  }
}

// Success: an empty ExportTraceServiceResponse. Failure: a google.rpc.Status
// carrying only its message (field 2), as the OTLP/HTTP spec asks.
function defaultBody(contentType: string, status: number): string | Buffer {
  const message = `injected HTTP ${status}`
  if (contentType === JSON_TYPE) return isOk(status) ? '{}' : JSON.stringify({ message })
  if (isOk(status)) return Buffer.alloc(0)
  const msg = Buffer.from(message)
  return Buffer.concat([Buffer.from([0x12, msg.length]), msg])
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.resolve(null)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > max) {
        over = true
        chunks.length = 0
        resolve(null)
      } else chunks.push(chunk)
    })
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks, size)))
    req.on('error', reject)
    req.on('close', () => reject(new Error('client went away before the body ended')))
  })
}

export async function startOtlpReceiver(opts: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  return new OtlpReceiver(opts).listen()
}
