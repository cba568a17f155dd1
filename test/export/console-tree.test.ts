// The console exporter's trace trees: one block per trace, children under
// their parent by start time, status, follows-from, events, attributes.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { byTrace, createConsoleTreeExporter, renderTrace, writeAll } from '../../src/export/console-tree.js'
import { record, tree } from '../helpers/spans.js'

t.test('one trace: a tree, indented by parent, with its details', async (t) => {
  const spans = tree()
  const text = renderTrace([spans[2]!, spans[0]!, spans[3]!, spans[1]!], 'haproxy') // any order in
  const lines = text.trimEnd().split('\n')
  t.match(lines[0], new RegExp(`^trace ${'b'.repeat(32)}  2023-11-14T22:13:20\\.000Z  4 spans  1\\.500 ms  service haproxy$`))
  t.same(
    lines.slice(1).map((l) => l.replace(/ {2}\{.*$/, '')),
    [
      '  root  SERVER  +0.000 ms  1.500 ms',
      '    failed  INTERNAL  +0.000 ms  1.500 ms  ERROR: connection timeout',
      '    child  CLIENT  +0.100 ms  0.800 ms',
      '      * retry  +0.500 ms',
      '      follows  INTERNAL  +0.000 ms  1.500 ms  (follows from child)',
    ],
    'children by start time',
  )
  t.match(lines[3], /\{big="18446744073709551615", ok=true, ratio=0.5\}$/)
  t.match(lines[4], /\{message=again\}$/)
  t.ok(text.endsWith('\n'))
})

t.test('a remote parent, long and odd values, several traces', async (t) => {
  const s = record({ parentSpanId: 'cafecafecafecafe', parentIsRemote: true, attributes: { ua: 'Mozilla/5.0 (X11; Linux)', long: 'x'.repeat(500), empty: '' } })
  const line = renderTrace([s], 'svc').split('\n')[1]!
  t.match(line, /\(parent cafecafecafecafe, remote\)/)
  t.match(line, /ua="Mozilla\/5.0 \(X11; Linux\)"/)
  t.match(line, /long="x{120}\.\.\. \(500 chars\)"/)
  t.match(line, /empty=""/)
  const a = tree('a'.repeat(32))
  const b = tree('c'.repeat(32))
  t.same(byTrace([a[0]!, b[0]!, a[1]!, b[1]!]).map((x) => x.map((y) => y.traceId[0])), [['a', 'a'], ['c', 'c']])
  const out: string[] = []
  const exp = createConsoleTreeExporter({ 'service.name': 'haproxy' }, (text) => out.push(text))
  const code = await new Promise<number>((resolve) => exp.export([...a, ...b], (r) => resolve(r.code)))
  t.equal(code, 0)
  t.equal(out.length, 2, 'one write per trace')
  t.ok(out.every((o) => o.startsWith('trace ')))
})

t.test('writeAll writes everything, through a pipe a reader drains slowly', async (t) => {
  // A child that reads its stdin slowly; we write 1 MB to it synchronously from a worker-like loop.
  const child = spawn(process.execPath, ['-e', "let n=0;process.stdin.on('data',d=>{n+=d.length});process.stdin.on('end',()=>{process.stdout.write(String(n))})"], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd
  const text = 'y'.repeat(1 << 20)
  // The pipe is non-blocking (libuv): writeAll waits on EAGAIN instead of failing or writing part.
  await new Promise<void>((resolve) => setImmediate(resolve))
  const writer = new Promise<void>((resolve, reject) => {
    // Off the event loop's turn so the child can start reading.
    setTimeout(() => {
      try {
        writeAll(fd, text)
        resolve()
      } catch (e) {
        reject(e as Error)
      }
    }, 10)
  })
  await writer
  child.stdin.end()
  await once(child, 'exit')
  t.equal(out, String(1 << 20), 'every byte arrived')
})
