// The OTLP receiver helper against real payloads: OpenTelemetry JS's own
// OTLP serializers (the bytes its http/json and http/protobuf exporters
// send) posted by the agent's OTLP/HTTP transport, plus hand-encoded edge
// cases.

import { gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import {
  type Attributes as ApiAttributes,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import { TraceState } from '@opentelemetry/core'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import {
  type AttrValue,
  countJsonSpans,
  countProtobufSpans,
  decodeJsonRequest,
  decodeProtobufRequest,
  type OtlpReceiver,
  type OtlpReceiverOptions,
  OtlpSpanKind,
  OtlpStatusCode,
  type ReceivedSpan,
  startOtlpReceiver,
} from '../../harness/otlp-receiver.js'
import { OtlpHttpTransport, type SendResult } from '../../src/export/otlp-http.js'

interface Exporter {
  export(spans: ReadableSpan[]): Promise<SendResult>
}

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const REMOTE_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const REMOTE_PARENT = '00f067aa0ba902b7'
const LINKED_TRACE = '5b8efff798038103d269b633813fc60c'
const LINKED_SPAN = 'eee19b7ec3c1b174'
const sid = (n: number): string => `a0000000000000${n.toString(16).padStart(2, '0')}`
const T0 = 1_700_000_000
const ns = (nanos: number): bigint => BigInt(T0) * 1_000_000_000n + BigInt(nanos)

// Flags the exporters derive: W3C sampled bit, plus "is-remote known" (0x100)
// and "is remote" (0x200) for the parent or link context.
const LOCAL_PARENT = 0x101
const REMOTE = 0x301

async function receiver(t: Test, opts: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver(opts)
  t.teardown(() => r.close())
  return r
}

/** OpenTelemetry's serializer for the protocol, one request per export (the transport has its own timeout). */
function exporter(t: Test, kind: 'json' | 'protobuf', url: string, compression: 'none' | 'gzip' = 'none'): Exporter {
  const transport = new OtlpHttpTransport({
    url,
    contentType: kind === 'json' ? 'application/json' : 'application/x-protobuf',
    headers: {},
    compression,
    timeoutMs: 5000,
    maxConcurrent: 1,
    userAgent: 'otlp-receiver-test',
  })
  t.teardown(() => transport.shutdown())
  const serializer = kind === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer
  return {
    export: (spans) => {
      const body = serializer.serializeRequest(spans)
      if (body === undefined) throw new Error(`${kind}: serialization failed`)
      return transport.send(body)
    },
  }
}

const exportSpans = (e: Exporter, spans: ReadableSpan[]): Promise<SendResult> => e.export(spans)

// A fixed tree with deterministic ids and times, recorded in memory so the
// very same ReadableSpans can be sent in both protocols.
function recordTree(): ReadableSpan[] {
  let nextSpan = 0
  const memory = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' }),
    idGenerator: { generateTraceId: () => TRACE, generateSpanId: () => sid(++nextSpan) },
    spanProcessors: [new SimpleSpanProcessor(memory)],
  })
  const tracer = provider.getTracer('spoa-tracer-test', '0.0.1')

  const root = tracer.startSpan(
    'GET /search',
    {
      kind: SpanKind.SERVER,
      startTime: [T0, 100],
      attributes: {
        'http.request.method': 'GET',
        'tls.established': true,
        'http.response.status_code': 200,
        ratio: 0.25,
        hops: ['edge', 'origin'],
        ports: [80, 443],
        // Beyond 2^53 yet printed exactly by JSON.stringify; see the 2^60 test.
        'big.int': 2 ** 53 + 2,
        'big.negative': -(2 ** 53 + 4),
        small_negative: -42,
      },
    },
    ROOT_CONTEXT,
  )
  const inRoot = trace.setSpan(ROOT_CONTEXT, root)

  const client = tracer.startSpan('upstream call', { kind: SpanKind.CLIENT, startTime: [T0, 200_000_000] }, inRoot)
  client.addEvent('request.sent', { 'request.bytes': 512, retried: false, peer: 'origin' }, [T0, 250_000_000])
  client.end([T0, 300_000_000])

  const producer = tracer.startSpan(
    'enqueue',
    {
      kind: SpanKind.PRODUCER,
      startTime: [T0, 310_000_000],
      links: [
        {
          context: {
            traceId: LINKED_TRACE,
            spanId: LINKED_SPAN,
            traceFlags: 1,
            isRemote: true,
            traceState: new TraceState('vendor=linked'),
          },
          attributes: { 'link.reason': 'follows-from', 'link.n': 3 },
        },
      ],
    },
    inRoot,
  )
  producer.end([T0, 320_000_000])

  const failing = tracer.startSpan('consume', { kind: SpanKind.CONSUMER, startTime: [T0, 400_000_000] }, inRoot)
  failing.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timed out' })
  failing.end([T0, 500_000_000])

  root.end([T0, 900_000_000])

  const remoteCtx = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: REMOTE_TRACE,
    spanId: REMOTE_PARENT,
    traceFlags: 1,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  })
  const remote = tracer.startSpan('haproxy stream', { kind: SpanKind.INTERNAL, startTime: [T0 + 1, 5] }, remoteCtx)
  remote.end([T0 + 1, 999_999_999])

  return memory.getFinishedSpans()
}

const RESOURCE = { 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' }
const SCOPE = { name: 'spoa-tracer-test', version: '0.0.1', attributes: {} }

function expected(over: Partial<ReceivedSpan> & Pick<ReceivedSpan, 'name' | 'spanId'>): ReceivedSpan {
  return {
    traceId: TRACE,
    parentSpanId: sid(1),
    traceState: '',
    flags: LOCAL_PARENT,
    kind: OtlpSpanKind.INTERNAL,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: OtlpStatusCode.UNSET, message: '' },
    resource: RESOURCE,
    scope: SCOPE,
    ...over,
  }
}

const EXPECTED: ReceivedSpan[] = [
  expected({
    name: 'upstream call',
    spanId: sid(2),
    kind: OtlpSpanKind.CLIENT,
    startTimeUnixNano: ns(200_000_000),
    endTimeUnixNano: ns(300_000_000),
    events: [
      {
        name: 'request.sent',
        timeUnixNano: ns(250_000_000),
        attributes: { 'request.bytes': 512, retried: false, peer: 'origin' },
        droppedAttributesCount: 0,
      },
    ],
  }),
  expected({
    name: 'enqueue',
    spanId: sid(3),
    kind: OtlpSpanKind.PRODUCER,
    startTimeUnixNano: ns(310_000_000),
    endTimeUnixNano: ns(320_000_000),
    links: [
      {
        traceId: LINKED_TRACE,
        spanId: LINKED_SPAN,
        traceState: 'vendor=linked',
        flags: REMOTE,
        attributes: { 'link.reason': 'follows-from', 'link.n': 3 },
        droppedAttributesCount: 0,
      },
    ],
  }),
  expected({
    name: 'consume',
    spanId: sid(4),
    kind: OtlpSpanKind.CONSUMER,
    startTimeUnixNano: ns(400_000_000),
    endTimeUnixNano: ns(500_000_000),
    status: { code: OtlpStatusCode.ERROR, message: 'upstream timed out' },
  }),
  expected({
    name: 'GET /search',
    spanId: sid(1),
    parentSpanId: '',
    kind: OtlpSpanKind.SERVER,
    startTimeUnixNano: ns(100),
    endTimeUnixNano: ns(900_000_000),
    attributes: {
      'http.request.method': 'GET',
      'tls.established': true,
      'http.response.status_code': 200,
      ratio: 0.25,
      hops: ['edge', 'origin'],
      ports: [80, 443],
      'big.int': 9007199254740994n,
      'big.negative': -9007199254740996n,
      small_negative: -42,
    },
  }),
  expected({
    name: 'haproxy stream',
    traceId: REMOTE_TRACE,
    spanId: sid(5),
    parentSpanId: REMOTE_PARENT,
    traceState: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    flags: REMOTE,
    startTimeUnixNano: BigInt(T0 + 1) * 1_000_000_000n + 5n,
    endTimeUnixNano: BigInt(T0 + 1) * 1_000_000_000n + 999_999_999n,
  }),
]

t.test('real OpenTelemetry payloads decode identically from http/json and http/protobuf', async (t) => {
  const spans = recordTree()
  t.equal(spans.length, 5, 'recorded the whole tree')
  const r = await receiver(t, { keepBodies: true })

  const results: Record<string, ReceivedSpan[]> = {}
  for (const kind of ['json', 'protobuf'] as const) {
    r.clear()
    const res = await exportSpans(exporter(t, kind, r.tracesUrl), spans)
    t.equal(res.ok, true, `${kind}: the collector's answer is a success`)
    results[kind] = await r.waitForSpans(5)
    t.equal(r.requests.length, 1, `${kind}: one request`)
    const req = r.requests[0]!
    t.equal(req.contentType, kind === 'json' ? 'application/json' : 'application/x-protobuf', `${kind}: content type`)
    t.equal(req.encoding, 'identity', `${kind}: not compressed`)
    t.equal(req.spanCount, 5, `${kind}: span count`)
    t.equal(req.bytes, req.body?.length, `${kind}: body kept`)
    t.equal((kind === 'json' ? countJsonSpans : countProtobufSpans)(req.body!), 5, `${kind}: counted without decoding (the bench sink)`)
    t.equal(r.acceptedRequests, 1, `${kind}: accepted`)
    t.strictSame(results[kind], EXPECTED, `${kind}: decodes to the expected spans`)
  }

  t.strictSame(results.json, results.protobuf, 'json and protobuf normalize to deeply-equal spans')
  t.equal(results.json![3]!.attributes['big.int'], 2n ** 53n + 2n, 'int64 beyond 2^53 is an exact bigint')
  t.equal(typeof results.protobuf![3]!.startTimeUnixNano, 'bigint', 'times are bigint ns')
})

t.test('bytes, kvlist, nested arrays and empty values in both protocols', async (t) => {
  const [span] = recordTree()
  // The SDK drops non-primitive attributes, but the OTLP serializers
  // handle the full AnyValue; overlay them on a finished span to reach them.
  const attributes = {
    raw: new Uint8Array([0, 1, 0xfe, 0xff]),
    map: { a: 'x', n: 7, nested: { ok: true, list: [1.5, 'two'] } },
    mixed: ['s', 1, 2.5, true, null],
    empty: [],
  } as unknown as ApiAttributes
  const odd = Object.create(span!, { attributes: { value: attributes, enumerable: true } }) as ReadableSpan
  const want: Record<string, AttrValue> = {
    raw: new Uint8Array([0, 1, 0xfe, 0xff]),
    map: { a: 'x', n: 7, nested: { ok: true, list: [1.5, 'two'] } },
    mixed: ['s', 1, 2.5, true, null],
    empty: [],
  }

  const r = await receiver(t)
  for (const kind of ['json', 'protobuf'] as const) {
    r.clear()
    t.equal((await exportSpans(exporter(t, kind, r.tracesUrl), [odd])).ok, true, `${kind}: exported`)
    const [got] = await r.waitForSpans(1)
    t.strictSame(got?.attributes, want, `${kind}: AnyValue variants`)
    t.ok(got?.attributes.raw instanceof Uint8Array && !Buffer.isBuffer(got.attributes.raw), `${kind}: bytes are a plain Uint8Array`)
  }
})

// What a backend stores, not what the SDK held: the JSON serializer writes
// integers unquoted with JSON.stringify, which prints the double 2^60 as its
// shortest round-trip form 1152921504606847000, and collectors read int64
// tokens digit by digit. Protobuf carries 2^60 exactly.
t.test('2^60 in both protocols: what each wire format really carries', async (t) => {
  const [span] = recordTree()
  const odd = Object.create(span!, { attributes: { value: { pow60: 2 ** 60 }, enumerable: true } }) as ReadableSpan
  const r = await receiver(t)
  const got: Record<string, AttrValue | undefined> = {}
  for (const kind of ['json', 'protobuf'] as const) {
    r.clear()
    t.equal((await exportSpans(exporter(t, kind, r.tracesUrl), [odd])).ok, true, `${kind}: exported`)
    got[kind] = (await r.waitForSpans(1))[0]?.attributes.pow60
  }
  t.equal(got.protobuf, 1152921504606846976n, 'protobuf: exactly 2^60')
  t.equal(got.json, 1152921504606847000n, 'json: the printed digits, read exactly')
})

t.test('gzip bodies in both protocols', async (t) => {
  const spans = recordTree()
  const r = await receiver(t, { keepBodies: true })
  for (const kind of ['json', 'protobuf'] as const) {
    r.clear()
    const res = await exportSpans(exporter(t, kind, r.tracesUrl, 'gzip'), spans)
    t.equal(res.ok, true, `${kind}: exported`)
    t.strictSame(await r.waitForSpans(5), EXPECTED, `${kind}+gzip: decodes to the expected spans`)
    const req = r.requests[0]!
    t.equal(req.encoding, 'gzip', `${kind}: request was gzip-encoded`)
    t.not(req.bytes, req.body?.length, `${kind}: wire size differs from the gunzipped size`)
  }
})

t.test('503 with Retry-After rejects spans, then recovery', async (t) => {
  const spans = recordTree()
  const r = await receiver(t)

  r.setResponse({ status: 503, retryAfterSeconds: 30 })
  const raw = await fetch(r.tracesUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-protobuf' },
    body: new Uint8Array(0),
  })
  t.equal(raw.status, 503, 'status as configured')
  t.equal(raw.headers.get('retry-after'), '30', 'Retry-After header')
  t.equal(raw.headers.get('content-type'), 'application/x-protobuf', 'reply in the request encoding')

  // One attempt per send: retrying is the span queue's decision, with the collector's Retry-After.
  const e = exporter(t, 'json', r.tracesUrl)
  const failed = await exportSpans(e, spans)
  t.equal(failed.ok, false, 'the sender sees the failure')
  t.equal(failed.retryable, true, '503 is worth sending again')
  t.equal(failed.retryAfterMs, 30_000, 'after the Retry-After')
  t.equal(r.spans.length, 0, 'rejected spans are not recorded')
  t.equal(r.rejectedRequests, 2, 'both requests counted as rejected')
  t.equal(r.acceptedRequests, 0)
  t.strictSame(
    r.requests.map((q) => [q.status, q.spanCount]),
    [[503, 0], [503, 5]],
    'requests record status and span count',
  )

  r.setResponse()
  t.equal((await exportSpans(e, spans)).ok, true, 'default response restored')
  t.equal((await r.waitForSpans(5)).length, 5)
  t.equal(r.acceptedRequests, 1)
})

t.test('delayed and custom replies', async (t) => {
  const r = await receiver(t)
  const body = JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: TRACE, spanId: sid(1), name: 'x' }] }] }] })
  const post = (): Promise<Response> =>
    fetch(r.tracesUrl, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body })

  const ok = await post()
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('content-type'), 'application/json')
  t.equal(await ok.text(), '{}', 'empty ExportTraceServiceResponse')

  r.setResponse({ delayMs: 300, body: '{"partialSuccess":{"rejectedSpans":"1"}}' })
  const started = Date.now()
  const pending = post()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(r.spans.length, 1, 'a delayed request is not recorded before its reply')
  const slow = await pending
  t.ok(Date.now() - started >= 280, 'reply was delayed')
  t.equal(await slow.text(), '{"partialSuccess":{"rejectedSpans":"1"}}', 'custom body')
  t.equal(r.spans.length, 2)
})

t.test('waitForSpans is bounded and says what arrived', async (t) => {
  const r = await receiver(t)
  await t.rejects(r.waitForSpans(1, 50), /waitForSpans\(1\) timed out after 50 ms; received 0 span/)

  const spans = recordTree()
  const waiting = r.waitForSpans(5, 5000)
  await exportSpans(exporter(t, 'protobuf', r.tracesUrl), spans)
  t.equal((await waiting).length, 5, 'resolves once enough spans arrive')

  const err = await r.waitForSpans(6, 50).then(
    () => null,
    (e: Error) => e,
  )
  t.match(err?.message, /waitForSpans\(6\) timed out after 50 ms; received 5 span\(s\)/)
  t.match(err?.message, /"GET \/search" server a000000000000001/, 'lists the spans')
  t.match(err?.message, /200 application\/x-protobuf 5 span\(s\)/, 'lists the requests')
})

t.test('rejects what is not an OTLP trace export', async (t) => {
  const r = await receiver(t, { maxBodyBytes: 64 * 1024 })
  const post = (path: string, type: string, body: Uint8Array | string, enc?: string): Promise<number> =>
    fetch(`${r.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': type, ...(enc ? { 'content-encoding': enc } : {}) },
      body,
    }).then(async (res) => {
      await res.arrayBuffer()
      return res.status
    })

  t.equal(await post('/v1/metrics', 'application/json', '{}'), 404, 'other signal')
  t.equal((await fetch(r.tracesUrl)).status, 405, 'GET')
  t.equal(await post('/v1/traces', 'text/plain', '{}'), 415, 'content type')
  t.equal(await post('/v1/traces', 'application/json', '{}', 'br'), 415, 'content encoding')
  t.equal(await post('/v1/traces', 'application/json', '{"resourceSpans": 3}'), 400, 'bad json shape')
  t.equal(await post('/v1/traces', 'application/json', '{"resourceSpans": ['), 400, 'bad json')
  t.equal(await post('/v1/traces', 'application/x-protobuf', Uint8Array.of(0x0a, 0x05, 0x01)), 400, 'truncated protobuf')
  t.equal(await post('/v1/traces', 'application/x-protobuf', Uint8Array.of(0x01, 0x02), 'gzip'), 400, 'bad gzip')
  t.equal(await post('/v1/traces', 'application/json', Buffer.alloc(65 * 1024, 0x20)), 413, 'too large on the wire')
  const bomb = gzipSync(Buffer.alloc(1024 * 1024, 0x20))
  t.ok(bomb.length < 64 * 1024)
  t.equal(await post('/v1/traces', 'application/json', bomb, 'gzip'), 413, 'too large once gunzipped')
  t.equal(r.invalidRequests, 10)
  t.equal(r.spans.length, 0)
})

t.test('OTLP/JSON int64 rules: strings and unquoted big integers are exact', async (t) => {
  const span = {
    traceId: TRACE.toUpperCase(),
    spanId: sid(1),
    name: 'j',
    kind: 'SPAN_KIND_CLIENT',
    startTimeUnixNano: 1700000000123456789,
    endTimeUnixNano: '1700000000987654321',
    status: { code: 2 },
    attributes: [
      { key: 'quoted', value: { intValue: '9007199254740993' } },
      { key: 'bare', value: { intValue: 9007199254740993 } },
      { key: 'small', value: { intValue: '42' } },
      { key: 'nan', value: { doubleValue: 'NaN' } },
      { key: 'bytes', value: { bytesValue: 'AAH+/w==' } },
      { key: 'empty', value: {} },
      { key: '__proto__', value: { stringValue: 'data, not a prototype' } },
    ],
  }
  // Written by hand: JSON.stringify cannot produce the unquoted big integers.
  const text = JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] })
    .replace('"startTimeUnixNano":1700000000123456800', '"startTimeUnixNano":1700000000123456789')
    .replace('"intValue":9007199254740992', '"intValue":9007199254740993')
  t.match(text, /"intValue":9007199254740993/)
  t.match(text, /"startTimeUnixNano":1700000000123456789/)
  const [got] = decodeJsonRequest(text)
  t.equal(got?.traceId, TRACE, 'hex ids are lowercased')
  t.equal(got?.kind, OtlpSpanKind.CLIENT, 'enum name accepted')
  t.equal(got?.startTimeUnixNano, 1700000000123456789n, 'unquoted time is exact')
  t.equal(got?.endTimeUnixNano, 1700000000987654321n, 'quoted time')
  t.equal(got?.status.code, OtlpStatusCode.ERROR)
  t.equal(got?.attributes.quoted, 9007199254740993n)
  t.equal(got?.attributes.bare, 9007199254740993n)
  t.equal(got?.attributes.small, 42)
  t.ok(Number.isNaN(got?.attributes.nan))
  t.strictSame(got?.attributes.bytes, new Uint8Array([0, 1, 0xfe, 0xff]))
  t.equal(got?.attributes.empty, null)
  t.equal(Object.getPrototypeOf(got?.attributes), Object.prototype, 'prototype untouched')
  t.equal(Object.getOwnPropertyDescriptor(got?.attributes, '__proto__')?.value, 'data, not a prototype')
  t.throws(() => decodeJsonRequest('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}'), /traceId is not hex/)
})

// ---- hand-encoded protobuf ---------------------------------------------------

function varint(v: bigint | number): Buffer {
  let n = BigInt.asUintN(64, BigInt(v))
  const out: number[] = []
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80)
    n >>= 7n
  }
  out.push(Number(n))
  return Buffer.from(out)
}
const tag = (no: number, wire: number): Buffer => varint((no << 3) | wire)
const vi = (no: number, v: bigint | number): Buffer => Buffer.concat([tag(no, 0), varint(v)])
const msg = (no: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  return Buffer.concat([tag(no, 2), varint(body.length), body])
}
const str = (no: number, s: string): Buffer => msg(no, Buffer.from(s))
const hexf = (no: number, h: string): Buffer => msg(no, Buffer.from(h, 'hex'))
const f64 = (no: number, v: bigint): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(v)
  return Buffer.concat([tag(no, 1), b])
}
const dbl = (no: number, v: number): Buffer => {
  const b = Buffer.alloc(8)
  b.writeDoubleLE(v)
  return Buffer.concat([tag(no, 1), b])
}
const f32 = (no: number, v: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v)
  return Buffer.concat([tag(no, 5), b])
}

// One unknown field of every wire type. The varint takes the full 10 bytes
// and the length-delimited one holds bytes that would parse as a KeyValue.
const unknowns = (): Buffer[] => [
  vi(1001, 2n ** 64n - 1n),
  f64(1002, 0xdeadbeefcafebaben),
  msg(1003, str(1, 'decoy'), msg(2, str(1, 'x'))),
  f32(1004, 0xcafebabe),
]

function handEncoded(withUnknowns: boolean): Buffer {
  const u = (): Buffer[] => (withUnknowns ? unknowns() : [])
  const attr = (no: number, key: string, ...value: Buffer[]): Buffer =>
    msg(no, ...u(), str(1, key), msg(2, ...u(), ...value, ...u()))
  const span = msg(
    2,
    ...u(),
    hexf(1, TRACE),
    hexf(2, sid(2)),
    str(3, 'k=v'),
    hexf(4, sid(1)),
    ...u(),
    str(5, 'hand'),
    vi(6, OtlpSpanKind.CLIENT),
    f64(7, ns(1)),
    f64(8, ns(2)),
    attr(9, 'i', vi(3, -1)),
    attr(9, 'd', dbl(4, 1.5)),
    attr(9, 'b', vi(2, 1)),
    attr(9, 'arr', msg(5, ...u(), msg(1, str(1, 'a')), ...u(), msg(1, vi(3, 2n ** 62n)))),
    attr(9, 'kv', msg(6, ...u(), attr(1, 'inner', str(1, 'v')))),
    attr(9, 'raw', hexf(7, '00ff')),
    vi(10, 1),
    msg(11, ...u(), f64(1, ns(3)), str(2, 'ev'), attr(3, 'e', str(1, 'x')), vi(4, 2), ...u()),
    vi(12, 3),
    msg(13, ...u(), hexf(1, LINKED_TRACE), hexf(2, LINKED_SPAN), str(3, 'l=1'), attr(4, 'l', vi(2, 0)), vi(5, 4), f32(6, REMOTE), ...u()),
    vi(14, 5),
    msg(15, ...u(), str(2, 'boom'), vi(3, OtlpStatusCode.ERROR), ...u()),
    f32(16, LOCAL_PARENT),
    ...u(),
  )
  const scopeSpans = msg(2, ...u(), msg(1, ...u(), str(1, 'scope'), str(2, '9.9'), attr(3, 's', str(1, 'y')), ...u()), span, ...u(), str(3, 'https://schema'))
  // Resource after the scope spans: field order on the wire is free.
  const resourceSpans = msg(1, ...u(), scopeSpans, msg(1, ...u(), attr(1, 'service.name', str(1, 'hand-svc')), vi(2, 0), ...u()), ...u())
  return Buffer.concat([...u(), resourceSpans, ...u()])
}

t.test('protobuf decoder skips unknown fields of every wire type', async (t) => {
  const clean = decodeProtobufRequest(handEncoded(false))
  const noisy = handEncoded(true)
  t.ok(noisy.length > handEncoded(false).length + 400, 'unknown fields were added at every level')
  const want: ReceivedSpan = {
    traceId: TRACE,
    spanId: sid(2),
    parentSpanId: sid(1),
    traceState: 'k=v',
    flags: LOCAL_PARENT,
    name: 'hand',
    kind: OtlpSpanKind.CLIENT,
    startTimeUnixNano: ns(1),
    endTimeUnixNano: ns(2),
    attributes: {
      i: -1,
      d: 1.5,
      b: true,
      arr: ['a', 2n ** 62n],
      kv: { inner: 'v' },
      raw: new Uint8Array([0, 0xff]),
    },
    droppedAttributesCount: 1,
    events: [{ name: 'ev', timeUnixNano: ns(3), attributes: { e: 'x' }, droppedAttributesCount: 2 }],
    droppedEventsCount: 3,
    links: [
      { traceId: LINKED_TRACE, spanId: LINKED_SPAN, traceState: 'l=1', flags: REMOTE, attributes: { l: false }, droppedAttributesCount: 4 },
    ],
    droppedLinksCount: 5,
    status: { code: OtlpStatusCode.ERROR, message: 'boom' },
    resource: { 'service.name': 'hand-svc' },
    scope: { name: 'scope', version: '9.9', attributes: { s: 'y' } },
  }
  t.strictSame(clean, [want], 'clean message decodes')
  t.strictSame(decodeProtobufRequest(noisy), [want], 'unknown fields change nothing')
  t.equal(countProtobufSpans(noisy), 1, 'and counting skips them too')

  const r = await receiver(t)
  const res = await fetch(r.tracesUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: noisy })
  t.equal(res.status, 200)
  t.strictSame(await r.waitForSpans(1), [want], 'and over HTTP')

  t.throws(() => decodeProtobufRequest(Buffer.concat([handEncoded(false), tag(99, 3)])), /unsupported wire type 3/)
  t.throws(() => decodeProtobufRequest(Buffer.concat([handEncoded(false), tag(99, 1), Buffer.alloc(7)])), /truncated/)
  t.throws(() => decodeProtobufRequest(Buffer.from([0x0a, 0x02, 0x12, 0x05])), /truncated/)
  t.throws(() => countProtobufSpans(Buffer.from([0x0a, 0x02, 0x12, 0x05])), /truncated/, 'counting finds it truncated too')
  t.throws(() => decodeProtobufRequest(vi(1, 1)), /wire type 0, expected 2/, 'known field with the wrong wire type')
})
