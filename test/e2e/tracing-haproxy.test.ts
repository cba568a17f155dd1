// End to end: real HAProxy 2.6 with the shipped 9-span SPOE configuration
// (the spoa-opentracing contract), the agent with its worker pool exporting
// over OTLP/HTTP, and a receiver decoding what a tracing backend would get.
// For every request: exactly 9 spans, one trace, the right parent of each,
// the tags and the baggage; none twice, none missing. Protobuf and JSON, and
// with --cpu-sched tracing-idle (the trees built in the tracing thread).

import t from 'tap'
import type { CpuSched } from '../../src/daemon/cpu-sched.js'
import { eventually } from '../../harness/wait.js'
import { NINE_SPAN_TREE } from '../../harness/flows/nine-span.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { OtlpSpanKind, OtlpStatusCode, type ReceivedSpan } from '../../harness/otlp-receiver.js'
import { startStack } from '../helpers/stack.js'

const bin = requireHaproxy(t)
const KIND: Record<string, number> = { server: OtlpSpanKind.SERVER, client: OtlpSpanKind.CLIENT, internal: OtlpSpanKind.INTERNAL }

const VARIANTS: Array<{ protocol: 'http/protobuf' | 'http/json'; cpuSched: CpuSched }> = [
  { protocol: 'http/protobuf', cpuSched: 'normal' },
  { protocol: 'http/json', cpuSched: 'normal' },
  { protocol: 'http/protobuf', cpuSched: 'tracing-idle' },
]
const linux = process.platform === 'linux'

for (const { protocol, cpuSched } of VARIANTS) {
  const how = cpuSched === 'normal' ? '' : `, --cpu-sched ${cpuSched}`
  t.test(`9-span flow through real HAProxy, exported as ${protocol}${how}`, { skip: bin === null || (cpuSched !== 'normal' && !linux) }, async (t) => {
    const { receiver, daemon, fePort } = await startStack(t, {
      bin: bin!,
      config: 'haproxy/haproxy.cfg',
      spoe: 'haproxy/spoe.cfg',
      daemon: (c) => ({ ...c, cpuSched, export: { ...c.export, protocol, numWorkers: 2 } }),
    })

    const paths: string[] = []
    const get = async (path: string) => {
      paths.push(path)
      const res = await fetch(`http://127.0.0.1:${fePort}${path}`)
      await res.text()
      t.equal(res.status, Number(/status=(\d+)/.exec(path)?.[1] ?? 200), `${path}: status`)
    }
    for (let i = 0; i < 5; i++) await get(`/seq/${i}`)
    await Promise.all(Array.from({ length: 20 }, (_, i) => get(`/par/${i}?q=${i}`)))
    await get('/broken?status=503')

    const spans = await receiver.waitForSpans(paths.length * 9, 15_000)
    t.equal(spans.length, paths.length * 9, `exactly ${paths.length} x 9 spans`)
    const traces = new Map<string, ReceivedSpan[]>()
    for (const s of spans) traces.set(s.traceId, [...(traces.get(s.traceId) ?? []), s])
    t.equal(traces.size, paths.length, 'one trace per request')
    t.equal(new Set(spans.map((s) => s.spanId)).size, spans.length, 'no span twice')

    const seenUrls = new Set<string>()
    for (const [traceId, trace] of traces) {
      const byName = new Map(trace.map((s) => [s.name, s]))
      const url = byName.get('Frontend HTTP request')?.attributes['http.url']
      const label = `trace of ${String(url)}`
      t.same([...byName.keys()].sort(), Object.keys(NINE_SPAN_TREE).sort(), `${label}: the 9 spans, each once`)
      const root = byName.get('HAProxy session')!
      const uniqueId = root.attributes['haproxy.unique_id']
      t.match(uniqueId, /^[0-9a-f-]{36}$/, `${label}: root carries the unique-id`)
      for (const [name, exp] of Object.entries(NINE_SPAN_TREE)) {
        const s = byName.get(name)!
        const parent = exp.parent === null ? '' : byName.get(exp.parent)!.spanId
        t.equal(s.parentSpanId, parent, `${label}: ${name} under ${exp.parent}`)
        t.equal(s.kind, KIND[exp.kind], `${label}: ${name} kind`)
        t.equal(s.attributes['baggage.haproxy_id'], uniqueId, `${label}: ${name} baggage`)
        if (exp.followsFrom) t.same(s.links.map((l) => [l.spanId, l.attributes['opentracing.ref_type']]), [[parent, 'follows_from']])
        t.ok(s.endTimeUnixNano >= s.startTimeUnixNano, `${label}: ${name} times ordered`)
        t.equal(s.resource['service.name'], 'haproxy')
        t.match(s.resource['haproxy.engine_id'], /^[0-9a-f-]{36}$/, 'engine-id on the resource')
        t.equal(s.scope.name, 'spoa-tracer')
      }
      const fe = byName.get('Frontend HTTP request')!
      t.equal(fe.attributes['http.method'], 'GET')
      t.equal(fe.attributes['http.version'], 'HTTP/1.1', `${label}: str("HTTP/") req.ver joined`)
      seenUrls.add(String(url))
      const resp = byName.get('HTTP response')!
      const expected = String(url).includes('status=503') ? 503 : 200
      t.equal(resp.attributes['http.status_code'], expected, `${label}: status tag`)
      t.equal(resp.status.code, expected === 503 ? OtlpStatusCode.ERROR : OtlpStatusCode.UNSET, `${label}: error status`)
      t.ok(root.startTimeUnixNano <= byName.get('Client session')!.startTimeUnixNano, `${label}: ${traceId} root first`)
    }
    t.same([...seenUrls].sort(), [...paths].sort(), 'every request traced, with its URL')
    // With the tracing thread, its counters reach this thread four times a second.
    t.ok(await eventually(() => daemon.trees.size === 0 && daemon.trees.stats.treesCompleted === paths.length, 5000), 'no tree left open in the agent')
    t.equal(daemon.exportStats.spansDropped.size, 0, 'nothing dropped')
    t.equal(daemon.agent.stats.protocolErrors.size, 0, 'no protocol error')
  })
}
