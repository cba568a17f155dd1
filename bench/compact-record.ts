// `npm run bench -- record`: the agent's work for one compact record, stage
// by stage, in this process and nothing else: the log record as HAProxy
// sends it (the bytes of a datagram), decoded and parsed (syslog.ts), read into the compact fields
// (record.ts), built into its span tree (compact.ts, into a sink that keeps
// the trees) and encoded as OTLP/protobuf (otlp-protobuf.ts, batches as the
// span queue seals them). No sockets, no threads, no HAProxy: what a change
// to one of those stages saves shows here long before it rises above the
// noise of `npm run bench -- wrk`. Every stage runs over the same records;
// --rounds repeats the whole and the median per stage is printed.

import { readLogRecord } from '../src/intake/log/record.js'
import { parseSyslog, SD_ID } from '../src/intake/log/syslog.js'
import { OtlpBatchBuilder } from '../src/export/otlp-protobuf.js'
import { applyCompactRecord } from '../src/tracing/compact.js'
import { TraceStore } from '../src/tracing/trace-store.js'
import type { FinishedSpan } from '../src/tracing/types.js'
import { performance } from 'node:perf_hooks'
import { fmt, median } from '../harness/report.js'
import { type Args, type BenchCommand, num } from './cli.js'

const STAGES = ['parse', 'read', 'build', 'encode'] as const
type Stage = (typeof STAGES)[number]

/** Records shaped like haproxy-compact-log.cfg's, each with its own ids and times. */
function records(n: number): Buffer[] {
  const hex = (len: number): string => {
    let s = ''
    for (let i = 0; i < len; i++) s += '0123456789abcdef'[Math.floor(Math.random() * 16)]
    return s
  }
  const start = 1_700_000_000_000_000
  return Array.from({ length: n }, (_, i) => {
    const p: Record<string, string> = {
      v: '1', id: '', compact: `00-${hex(32)}-${hex(16)}-01`, parent: '', tracestate: '',
      start: String(start + i * 1000), end: String(start + i * 1000 + 900), timers: '0 0 1 3',
      method: 'GET', url: '/index.html?q=1', host: 'shop.example:8080', status: '200', version: '1.1',
      ua: 'wrk', tls: '', frontend: 'http-in', backend: 'app', server: 'app1',
      client: '127.0.0.1', client_port: String(40000 + (i % 20000)), server_addr: '127.0.0.1', server_port: '8000',
    }
    const sd = Object.entries(p).map(([k, v]) => ` ${k}="${v}"`).join('')
    return Buffer.from(`<134>1 2026-12-02T17:00:00.000000+00:00 - haproxy 1234 - [${SD_ID}${sd}] 200 GET /index.html\n`)
  })
}

/**
 * One round: each record through every stage in turn, as the agent takes
 * them (one at a time, so that what a stage allocates dies young, as it
 * does there); each stage timed with its own clock readings.
 */
function once(texts: readonly Buffer[], batch: number): Record<Stage, number> {
  const got: FinishedSpan[][] = []
  const store = new TraceStore({ sink: { push: (spans) => got.push(spans) } })
  const builder = new OtlpBatchBuilder({ resource: { 'service.name': 'haproxy' }, defaults: {}, scope: { name: 'spoa-tracer', version: '0' } })
  const ns: Record<Stage, number> = { parse: 0, read: 0, build: 0, encode: 0 }
  const now = performance.now.bind(performance)
  for (const b of texts) {
    const t0 = now()
    // As the intake does with each datagram or frame.
    const r = parseSyslog(b.toString('utf8'))
    const t1 = now()
    if (r.kind !== 'record') throw new Error(`record not parsed: ${r.kind}`)
    const f = readLogRecord(r.params)
    const t2 = now()
    if ('error' in f) throw new Error(f.error)
    applyCompactRecord(store, f.fields, null, f.uniqueId)
    const t3 = now()
    const tree = got.pop()
    if (tree === undefined) throw new Error('no tree')
    builder.add(tree)
    if (builder.spans >= batch) builder.take()
    const t4 = now()
    ns.parse += t1 - t0
    ns.read += t2 - t1
    ns.build += t3 - t2
    ns.encode += t4 - t3
  }
  const t = now()
  builder.take()
  ns.encode += now() - t
  for (const s of STAGES) ns[s] *= 1e6
  return ns
}

export const command: BenchCommand = {
  name: 'record',
  describe: "the agent's work per compact record, stage by stage (parse, read, build the spans, encode), in one process",
  options: {
    records: { type: 'number', default: 2000, describe: 'distinct records per round' },
    rounds: { type: 'number', default: 300, describe: 'rounds over them (the first tenth warms up and is not counted)' },
    batch: { type: 'number', default: 2048, describe: 'spans per encoded request (the export batch size)' },
  },
  examples: [['npm run bench -- record', 'the default: 2,000 records, 300 rounds']],
  async run(a: Args): Promise<number> {
    const n = num(a, 'records', 1)
    const rounds = num(a, 'rounds', 10)
    const texts = records(n)
    const per: Record<Stage, number[]> = { parse: [], read: [], build: [], encode: [] }
    const warm = Math.floor(rounds / 10)
    for (let r = 0; r < rounds; r++) {
      const ns = once(texts, num(a, 'batch', 1))
      if (r >= warm) for (const s of STAGES) per[s].push(ns[s] / n)
    }
    const med = STAGES.map((s) => median(per[s]))
    console.log(`compact record, ${fmt(n)} records x ${rounds - warm} rounds, node ${process.version}; ns per record, median of the rounds:`)
    for (const [i, s] of STAGES.entries()) console.log(`  ${s.padEnd(7)} ${fmt(med[i]!)}`)
    console.log(`  total   ${fmt(med.reduce((x, y) => x + y, 0))}`)
    return 0
  },
}
