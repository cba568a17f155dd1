// The direct ReadableSpan path must produce exactly what the SDK's Tracer
// path produces for the same span: same OTLP bytes.

import t from 'tap'
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import { AlwaysOnSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createOtlpEncoder, createRecordExporter, FileSpanExporter, SpanConverter } from '../../src/export/otel.js'
import { DEFAULT_EXPORT_CONFIG } from '../../src/export/config.js'
import { decodeJsonRequest, decodeProtobufRequest } from '../../harness/otlp-receiver.js'
import { tree } from '../helpers/spans.js'

const scope = { name: 'spoa-tracer', version: '1.2.3' }

t.test('direct ReadableSpans serialize exactly like Tracer spans', async (t) => {
  const records = tree()
  const converter = new SpanConverter({ 'service.name': 'haproxy' }, scope)
  const direct = converter.convert(records)

  // The same spans through the public Tracer API, ids preset through an IdGenerator.
  let nextSpanId = ''
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': 'haproxy', 'haproxy.engine_id': 'engine-1' })),
    sampler: new AlwaysOnSampler(),
    idGenerator: { generateTraceId: () => records[0]!.traceId, generateSpanId: () => nextSpanId },
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  })
  const tracer = provider.getTracer(scope.name, scope.version)
  const kinds = { server: SpanKind.SERVER, client: SpanKind.CLIENT, internal: SpanKind.INTERNAL, producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER }
  const hr = (us: number): [number, number] => [Math.floor(us / 1e6), (us % 1e6) * 1000]
  for (const r of records) {
    nextSpanId = r.spanId
    const parent = r.parentSpanId ? trace.setSpanContext(ROOT_CONTEXT, { traceId: r.traceId, spanId: r.parentSpanId, traceFlags: 1 }) : ROOT_CONTEXT
    const span = tracer.startSpan(
      r.name,
      {
        kind: kinds[r.kind],
        startTime: hr(r.startUs),
        attributes: r.attributes,
        links: r.links.map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: 1 }, attributes: l.attributes })),
      },
      parent,
    )
    for (const e of r.events) span.addEvent(e.name, e.attributes, hr(e.timeUs))
    if (r.status.code) span.setStatus({ code: r.status.code, message: r.status.message })
    span.end(hr(r.endUs))
  }
  const viaTracer = exporter.getFinishedSpans()
  t.equal(viaTracer.length, records.length)
  // Dropped attribute counts come from our own limits; the Tracer path has none to report.
  const directNoDrops = converter.convert(records.map((r) => ({ ...r, droppedAttributes: 0 })))
  t.same(
    Buffer.from(JsonTraceSerializer.serializeRequest(directNoDrops)!).toString(),
    Buffer.from(JsonTraceSerializer.serializeRequest(viaTracer)!).toString(),
    'OTLP/JSON identical',
  )
  t.same(
    Buffer.from(ProtobufTraceSerializer.serializeRequest(directNoDrops)!),
    Buffer.from(ProtobufTraceSerializer.serializeRequest(viaTracer)!),
    'OTLP protobuf identical',
  )
  const decoded = decodeProtobufRequest(ProtobufTraceSerializer.serializeRequest(direct)!)
  t.equal(decoded.find((s) => s.name === 'failed')!.droppedAttributesCount, 3, 'dropped counts carried')
  t.equal(decoded.find((s) => s.name === 'child')!.attributes.big, '18446744073709551615')
  await provider.shutdown()
})

t.test('one Resource per engine-id', async (t) => {
  const converter = new SpanConverter({ 'service.name': 'haproxy' }, scope)
  const [a, b] = converter.convert([tree()[0]!, { ...tree()[0]!, engineId: 'engine-2' }])
  const [c] = converter.convert([tree()[0]!])
  t.not(a!.resource, b!.resource)
  t.equal(a!.resource, c!.resource, 'cached: the serializer groups spans by Resource identity')
  t.equal(b!.resource.attributes['haproxy.engine_id'], 'engine-2')
  t.equal(converter.convert([{ ...tree()[0]!, engineId: null }])[0]!.resource.attributes['haproxy.engine_id'], undefined)
})

t.test('file exporter: one OTLP/JSON request per line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-file-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'spans.jsonl')
  const exporter = new FileSpanExporter(path)
  const converter = new SpanConverter({ 'service.name': 'haproxy' }, scope)
  for (let i = 0; i < 2; i++) {
    const code = await new Promise<number>((resolve) => exporter.export(converter.convert(tree()), (r) => resolve(r.code)))
    t.equal(code, 0, 'export succeeded')
  }
  await exporter.shutdown()
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean)
  t.equal(lines.length, 2)
  const spans = lines.flatMap((l) => decodeJsonRequest(l))
  t.equal(spans.length, 8)
  t.same(spans.slice(0, 4).map((s) => s.name), ['root', 'child', 'follows', 'failed'])
  const code = await new Promise<number>((resolve) => exporter.export(converter.convert(tree()), (r) => resolve(r.code)))
  t.equal(code, 1, 'export after shutdown fails')
})

t.test('OTLP request bodies in either protocol decode to the same spans', async (t) => {
  const records = tree()
  const proto = decodeProtobufRequest(createOtlpEncoder({ ...DEFAULT_EXPORT_CONFIG, protocol: 'http/protobuf' }, scope)(records))
  const json = decodeJsonRequest(createOtlpEncoder({ ...DEFAULT_EXPORT_CONFIG, protocol: 'http/json' }, scope)(records))
  t.equal(proto.length, records.length)
  t.same(json, proto)
  t.same(proto.map((s) => s.spanId), records.map((r) => r.spanId))
})

t.test('local exporters: the file exporter for file; console, otlp and none are not OTel exporters', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spoa-exp-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'f.jsonl')
  const file = createRecordExporter({ ...DEFAULT_EXPORT_CONFIG, exporter: 'file', file: path }, scope)
  const code = await new Promise<number>((resolve) => file.export(tree(), (r) => resolve(r.code)))
  t.equal(code, 0)
  await file.shutdown()
  t.same(decodeJsonRequest(readFileSync(path, 'utf8').trim()).map((s) => s.name), ['root', 'child', 'follows', 'failed'], 'OTLP/JSON line')
  // otlp is encoded by createOtlpEncoder and sent by otlp-http.ts; none starts no worker.
  t.throws(() => createRecordExporter({ ...DEFAULT_EXPORT_CONFIG, exporter: 'otlp' }, scope), /no local exporter/)
  t.throws(() => createRecordExporter({ ...DEFAULT_EXPORT_CONFIG, exporter: 'none' }, scope), /no local exporter/)
})
