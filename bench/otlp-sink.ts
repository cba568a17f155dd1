// A counting OTLP/HTTP traces sink, run as its own process by
// bench/tracing-agent.ts so that its CPU is apart from the agent's (and can be
// subtracted from the machine's). It accepts POST /v1/traces, answers 200
// (an empty body for protobuf, `{}` for JSON, as a collector does) and counts
// requests, bytes and spans: the benchmark's proof that spans really left the
// agent. Counting is kept cheap (otlp-count.ts):
//   - protobuf: no decoding, a walk over length-delimited fields only:
//     ExportTraceServiceRequest{1: ResourceSpans{2: ScopeSpans{2: Span}}};
//   - JSON: JSON.parse and sum resourceSpans[].scopeSpans[].spans.length
//     (several times dearer than the protobuf walk: see the sink's CPU).
// Gzip bodies (Content-Encoding: gzip) are inflated first. It also takes
// what a Datadog tracer sends its agent (PUT or POST /v0.4/traces,
// MessagePack; msgpack-count.ts): the spans of HAProxy's OpenTracing filter
// with the Datadog plugin, the wrk benchmark's `ot` mode.
//
// Protocol with the parent, one JSON object per stdout line:
//   {"type":"listening","port":N}   once;
//   "usage" on stdin -> {"type":"usage",...} (SinkUsage).
// SIGTERM, SIGINT or stdin closing end it with exit code 0.
//
// Usage: node dist/bench/otlp-sink.js [--host 127.0.0.1] [--port 0]

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { gunzipSync } from 'node:zlib'
import { onStdinCommands } from './child.js'
import { num, parseFlags, str } from './cli-options.js'
import { countMsgpackSpans } from './msgpack-count.js'
import { countJsonSpans, countProtobufSpans } from './otlp-count.js'

export interface SinkUsage {
  type: 'usage'
  atMs: number
  userUs: number
  systemUs: number
  /** POST /v1/traces answered 200. */
  requests: number
  protobufRequests: number
  jsonRequests: number
  /** Body bytes as received (compressed, if they were). */
  bytes: number
  spans: number
  /** Requests answered 400 (undecodable) or 404 (other paths, methods). */
  rejected: number
  /** The first few reasons for rejections. */
  samples: string[]
}

// ---- server ----------------------------------------------------------------

const counters = {
  requests: 0,
  protobufRequests: 0,
  jsonRequests: 0,
  bytes: 0,
  spans: 0,
  rejected: 0,
  samples: [] as string[],
}

function reject(res: ServerResponse, status: number, why: string): void {
  counters.rejected++
  if (counters.samples.length < 5) counters.samples.push(`${status}: ${why}`)
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(why)
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? ''
  if ((req.method === 'PUT' || req.method === 'POST') && url.startsWith('/v0.4/traces')) return onDatadog(req, res)
  if (req.method !== 'POST' || (url !== '/v1/traces' && !url.startsWith('/v1/traces?'))) {
    req.resume()
    reject(res, 404, `${req.method} ${url}`)
    return
  }
  const chunks: Buffer[] = []
  let size = 0
  req.on('data', (c: Buffer) => {
    chunks.push(c)
    size += c.length
  })
  req.on('end', () => {
    let body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
    const json = (req.headers['content-type'] ?? '').includes('json')
    let spans: number
    try {
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      spans = json ? countJsonSpans(body) : countProtobufSpans(body)
    } catch (err) {
      reject(res, 400, `undecodable ${json ? 'JSON' : 'protobuf'} body: ${(err as Error).message}`)
      return
    }
    counters.requests++
    counters.bytes += size
    counters.spans += spans
    if (json) {
      counters.jsonRequests++
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 })
      res.end('{}')
    } else {
      counters.protobufRequests++
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 })
      res.end()
    }
  })
  req.on('error', () => {})
}

function onDatadog(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    let spans: number
    try {
      spans = countMsgpackSpans(body)
    } catch (err) {
      reject(res, 400, `undecodable MessagePack body: ${(err as Error).message}`)
      return
    }
    counters.requests++
    counters.bytes += body.length
    counters.spans += spans
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 })
    res.end('{}')
  })
  req.on('error', () => {})
}

function print(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

function report(): void {
  const cpu = process.cpuUsage()
  const u: SinkUsage = { type: 'usage', atMs: performance.now(), userUs: cpu.user, systemUs: cpu.system, ...counters }
  print(u)
}

const flags = parseFlags(process.argv.slice(2), {
  host: { kind: 'string', help: 'address to listen on' },
  port: { kind: 'number', help: 'port (0: any free one)' },
})

const server = createServer(onRequest)
// The exporters keep connections alive; idle ones must not end mid-run.
server.keepAliveTimeout = 60_000
server.listen(num(flags, 'port', 0), str(flags, 'host') ?? '127.0.0.1', () => {
  const a = server.address()
  print({ type: 'listening', port: typeof a === 'object' && a !== null ? a.port : 0 })
})

function exit(): void {
  server.closeAllConnections()
  server.close()
  process.exit(0)
}

process.on('SIGTERM', exit)
process.on('SIGINT', exit)
onStdinCommands((cmd) => {
  if (cmd === 'usage') report()
  else console.error(`otlp sink: unknown command "${cmd}"`)
}, exit)
