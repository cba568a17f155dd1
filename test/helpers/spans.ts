// Builders of span records for export tests.

import type { FinishedSpan } from '../../src/tracing/types.js'

let n = 0

export function record(over: Partial<FinishedSpan> = {}): FinishedSpan {
  n++
  return {
    traceId: 'a'.repeat(24) + n.toString(16).padStart(8, '0'),
    spanId: n.toString(16).padStart(16, '0'),
    parentSpanId: '',
    parentIsRemote: false,
    traceFlags: 1,
    traceState: '',
    name: `span-${n}`,
    kind: 'server',
    startUs: 1_700_000_000_000_000,
    endUs: 1_700_000_000_001_500,
    attributes: { 'http.method': 'GET', n },
    events: [],
    links: [],
    status: { code: 0, message: '' },
    engineId: 'engine-1',
    droppedAttributes: 0,
    droppedEvents: 0,
    droppedLinks: 0,
    ...over,
  }
}

/** A small tree: root, child with an event, follows-from with a link, error span. */
export function tree(traceId = 'b'.repeat(32)): FinishedSpan[] {
  const root = record({ traceId, spanId: '1000000000000001', name: 'root', kind: 'server' })
  const child = record({
    traceId,
    spanId: '1000000000000002',
    parentSpanId: root.spanId,
    name: 'child',
    kind: 'client',
    startUs: root.startUs + 100,
    endUs: root.startUs + 900,
    events: [{ name: 'retry', timeUs: root.startUs + 500, attributes: { message: 'again' } }],
    attributes: { big: '18446744073709551615', ok: true, ratio: 0.5 },
  })
  const follows = record({
    traceId,
    spanId: '1000000000000003',
    parentSpanId: child.spanId,
    name: 'follows',
    kind: 'internal',
    links: [{ traceId, spanId: child.spanId, attributes: { 'opentracing.ref_type': 'follows_from' } }],
  })
  const failed = record({
    traceId,
    spanId: '1000000000000004',
    parentSpanId: root.spanId,
    name: 'failed',
    kind: 'internal',
    status: { code: 2, message: 'connection timeout' },
    attributes: { 'spoa_tracer.incomplete': 'reaped' },
    droppedAttributes: 3,
  })
  return [root, child, follows, failed]
}
