// Our OTLP/protobuf encoder against the OpenTelemetry serializer: the same
// records must give the same bytes.

import { MessageChannel } from 'node:worker_threads'
import t from 'tap'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { defaultResource } from '@opentelemetry/resources'
import { SpanConverter } from '../../src/export/otel.js'
import { OtlpProtobufEncoder } from '../../src/export/otlp-protobuf.js'
import type { FinishedSpan } from '../../src/tracing/types.js'
import { decodeProtobufRequest } from '../../harness/otlp-receiver.js'
import { record, tree } from '../helpers/spans.js'

const scope = { name: 'spoa-tracer', version: '1.2.3' }
const resource = { 'service.name': 'haproxy', 'deployment.environment': 'test' }

function both(records: FinishedSpan[]): [Buffer, Buffer] {
  const ours = new OtlpProtobufEncoder({ resource, defaults: defaultResource().attributes as Record<string, string>, scope })
  const otel = ProtobufTraceSerializer.serializeRequest(new SpanConverter(resource, scope).convert(records))!
  return [Buffer.from(ours.encode(records)), Buffer.from(otel)]
}

t.test('the reference tree: identical bytes', async (t) => {
  const [ours, otel] = both(tree())
  t.same(ours, otel)
})

t.test('every value shape, size and id form', async (t) => {
  const records = [
    record({
      name: 'ünïcode span ✓',
      attributes: {
        neg: -1,
        negBig: -(2 ** 52),
        big: 2 ** 53 - 1,
        zero: 0,
        dbl: -0.25,
        nan: Number.NaN,
        t: true,
        f: false,
        empty: '',
        long: 'x'.repeat(300),
        utf8: 'héllo wörld ✓'.repeat(10),
        // Around the encoder's ASCII fast path (under 128 chars): its last length, the first past it, a late non-ASCII char, a lone surrogate.
        ascii127: 'a'.repeat(127),
        ascii128: 'b'.repeat(128),
        lateUtf8: `${'c'.repeat(120)}é`,
        short8bit: 'ÿ',
        surrogate: 'x\ud800y',
      },
      events: Array.from({ length: 3 }, (_, i) => ({ name: `e${i}`, timeUs: 1_700_000_000_123_456 + i, attributes: { message: 'm'.repeat(i * 100) } })),
      traceFlags: 0,
      parentSpanId: '00f067aa0ba902b7',
      parentIsRemote: true,
      traceState: 'vendor=value,other=x',
      status: { code: 2, message: 'connection timeout' },
      startUs: 0,
      endUs: 2 ** 52,
      droppedEvents: 2,
      droppedLinks: 1,
    }),
    record({ engineId: 'engine-2', kind: 'producer' }),
    record({ engineId: null, kind: 'consumer' }),
    record({ engineId: 'engine-2', kind: 'client', attributes: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, `v${i}`])) }),
    record({}),
  ]
  const [ours, otel] = both(records)
  t.same(ours, otel, 'several resources, long messages (multi-byte lengths), remote parent, trace state')
  const decoded = decodeProtobufRequest(ours)
  t.equal(decoded.length, 5)
  t.equal(decoded[0]!.attributes.negBig, -(2 ** 52))
  t.equal(decoded[0]!.endTimeUnixNano, BigInt(2 ** 52) * 1000n, 'nanoseconds exact beyond 2^53')
})

t.test('a batch much larger than the initial buffer', async (t) => {
  const records = Array.from({ length: 3000 }, (_, i) => record({ attributes: { i, url: `/path/${i}?q=${'x'.repeat(i % 50)}` } }))
  const [ours, otel] = both(records)
  t.ok(ours.length > 64 * 1024)
  t.same(ours, otel)
})

t.test('a request body owns its ArrayBuffer (it is moved to a worker), whatever its size', async (t) => {
  const { OtlpBatchBuilder } = await import('../../src/export/otlp-protobuf.js')
  const { ownedBody } = await import('../../src/export/pool.js')
  const builder = new OtlpBatchBuilder({ resource, defaults: {}, scope })
  for (const n of [1, 3, 200]) {
    builder.add(Array.from({ length: n }, () => record({ attributes: { k: 'v'.repeat(50) } })))
    const body = builder.take()!
    t.same([body.byteOffset, body.byteLength], [0, body.buffer.byteLength], `${n} span(s), ${body.byteLength} bytes: the whole buffer`)
    t.equal(ownedBody(body), body, 'moved as it is')
  }
  // A view of Node's shared pool (Buffer.from of a few bytes) is copied before it can be moved.
  const pooled = Buffer.from('a small body')
  t.ok(pooled.buffer.byteLength > pooled.byteLength, 'a slice of the shared pool')
  const moved = ownedBody(pooled)
  t.not(moved.buffer, pooled.buffer, 'a copy of its own')
  t.same([moved.byteOffset, moved.byteLength, moved.buffer.byteLength], [0, pooled.byteLength, pooled.byteLength])
  t.same(Buffer.from(moved), pooled, 'same bytes')
  const { port1, port2 } = new MessageChannel()
  port1.postMessage(moved, [moved.buffer as ArrayBuffer])
  t.equal(moved.byteLength, 0, 'the copy is detached by the move')
  t.equal(pooled.toString(), 'a small body', 'the pool is untouched')
  port1.close()
  port2.close()
})
