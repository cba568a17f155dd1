// A counting OTLP/HTTP traces sink, run as its own process by
// bench/tracing-agent.ts so that its CPU is apart from the agent's (and can be
// subtracted from the machine's). It accepts POST /v1/traces, answers 200
// (an empty body for protobuf, `{}` for JSON, as a collector does) and counts
// requests, bytes and spans: the benchmark's proof that spans really left the
// agent. Counting is kept cheap (harness/otlp-decode.ts):
//   - protobuf: no decoding, a walk over the enclosing messages, each span
//     skipped by its length: ExportTraceServiceRequest{1: ResourceSpans{2:
//     ScopeSpans{2: Span}}};
//   - JSON: JSON.parse and sum resourceSpans[].scopeSpans[].spans.length
//     (several times dearer than the protobuf walk: see the sink's CPU).
// Gzip bodies (Content-Encoding: gzip) are inflated first. It also takes
// what a Datadog tracer sends its agent (PUT or POST /v0.4/traces,
// MessagePack; msgpack-count.ts): the spans of HAProxy's OpenTracing filter
// with the Datadog plugin, the wrk benchmark's `ot` mode.
//
// Protocol with the parent, one JSON object per stdout line:
//   {"type":"listening","port":N}   once;
//   "usage" on stdin -> {"type":"usage",...} (SinkUsage);
//   "off" -> the port closed, open connections cut (a collector gone: the
//            soak benchmark's outage) -> {"type":"off"}; "on" -> listening on
//            the same port again -> {"type":"on"}.
// SIGTERM, SIGINT or stdin closing end it with exit code 0.
//
// Usage: node dist/bench/otlp-sink.js [--host 127.0.0.1] [--port 0]

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { gunzipSync } from 'node:zlib'
import { countJsonSpans, countProtobufSpans } from '../harness/otlp-decode.js'
import { num, parseChildArgs, str } from './cli.js'
import { onStdinCommands, print } from './json-line-child.js'
import { countMsgpackSpans } from './msgpack-count.js'

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

function report(): void {
  const cpu = process.cpuUsage()
  const u: SinkUsage = { type: 'usage', atMs: performance.now(), userUs: cpu.user, systemUs: cpu.system, ...counters }
  print(u)
}

const flags = parseChildArgs(process.argv.slice(2), {
  host: { type: 'string', default: '127.0.0.1', describe: 'address to listen on' },
  port: { type: 'number', default: 0, describe: 'port (0: any free one)' },
})
const host = str(flags, 'host')!

const server = createServer(onRequest)
// The exporters keep connections alive; idle ones must not end mid-run.
server.keepAliveTimeout = 60_000
let port = num(flags, 'port')
server.listen(port, host, () => {
  const a = server.address()
  port = typeof a === 'object' && a !== null ? a.port : 0
  print({ type: 'listening', port })
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
  else if (cmd === 'off') {
    server.close(() => print({ type: 'off' }))
    server.closeAllConnections()
  } else if (cmd === 'on') server.listen(port, host, () => print({ type: 'on' }))
  else console.error(`otlp sink: unknown command "${cmd}"`)
}, exit)
