// docs/PROTOCOL.md cannot drift from the codec: its test vectors, varint
// table, frame types, data types and status codes are read from the
// document and checked against the encoder, the decoder and the constants.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { cursor, DataType, decodeFrame, encodeFrame, FrameType, readVarint, STATUS_MESSAGES } from '../../src/spop/index.js'
import { writeVarint } from '../../src/spop/varint.js'
import { vectors } from '../fixtures/frames.js'
import { bytes } from '../helpers/bytes.js'

const DOC = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8')

/** The text under the heading that starts with `title`, up to the next heading of the same or a higher level. */
function section(title: string): string {
  const lines = DOC.split('\n')
  // Heading levels, 0 for other lines: a `#` inside a fenced block is a comment, not a heading.
  let fenced = false
  const levels = lines.map((l) => {
    if (l.startsWith('```')) fenced = !fenced
    return fenced ? 0 : (/^(#+) /.exec(l)?.[1]!.length ?? 0)
  })
  const start = lines.findIndex((l, i) => levels[i]! > 0 && l.replace(/^#+ /, '').startsWith(title))
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no section "${title}"`)
  const end = levels.findIndex((n, i) => i > start && n > 0 && n <= levels[start]!)
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n')
}

/** Table rows as trimmed cells, header and separator left out. */
function rows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|[-| ]+\|$/.test(l))
    .slice(1)
    .map((l) => l.slice(1, -1).split('|').map((c) => c.trim()))
}

// bytes`...` reads the raw strings of its template: one string, no substitutions.
const annotated = (text: string): Buffer => bytes(Object.assign([text], { raw: [text] }) as unknown as TemplateStringsArray)
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex')

t.test('every test vector of the document against the codec', async (t) => {
  const dumps = new Map<string, Buffer>()
  for (const [, body] of section('Test vectors').matchAll(/```text\n([\s\S]*?)```/g)) {
    const id = /^# vector (\S+):/.exec(body!)?.[1]
    if (id === undefined) throw new Error(`a dump without "# vector ID:" as its first line:\n${body}`)
    t.notOk(dumps.has(id), `vector ${id} appears once`)
    dumps.set(id, annotated(body!))
  }
  t.same([...dumps.keys()].sort(), vectors.map((v) => v.id).sort(), 'the document shows every fixture of test/fixtures/frames.ts, and only those')
  for (const v of vectors) {
    const wire = dumps.get(v.id)
    if (wire === undefined) continue
    await t.test(`vector ${v.id}`, async (t) => {
      t.equal(hexOf(wire), hexOf(v.wire), 'the dump is the fixture\'s bytes')
      t.equal(wire.readUInt32BE(0), wire.length - 4, 'its length prefix counts the bytes after it')
      t.same(decodeFrame(wire.subarray(4)), v.frame, 'decodes to the fixture\'s frame')
      t.equal(hexOf(encodeFrame(v.frame)), hexOf(wire), 'the frame encodes to the dump')
    })
  }
})

t.test('the varint table', async (t) => {
  const table = rows(section('Varint'))
  t.ok(table.length >= 10, `${table.length} rows read`)
  for (const [value, cell] of table) {
    const want = /^`([0-9a-f ]+)`$/.exec(cell!)?.[1]?.replace(/ /g, '')
    if (!/^\d+$/.test(value!) || want === undefined) {
      t.fail(`row not understood: | ${value} | ${cell} |`)
      continue
    }
    const v = BigInt(value!)
    const buf = Buffer.alloc(10)
    t.equal(hexOf(buf.subarray(0, writeVarint(buf, 0, v))), want, `${value} encodes as ${want}`)
    const c = cursor(Buffer.from(want, 'hex'))
    t.equal(BigInt(readVarint(c)), v, `${want} decodes as ${value}`)
    t.equal(c.pos, want.length / 2, 'every byte read')
  }
})

t.test('frame types', async (t) => {
  const table = rows(section('Frame types'))
  t.equal(table.length, Object.keys(FrameType).length, 'one row per type')
  for (const [id, name] of table) {
    t.equal(FrameType[name!.replace(/-/g, '_') as keyof typeof FrameType], Number(id), `${name} is ${id}`)
  }
})

t.test('data types', async (t) => {
  const table = rows(section('Typed data')).filter(([id]) => /^\d+$/.test(id!))
  t.equal(table.length, Object.keys(DataType).length, 'one row per type, reserved ones apart')
  for (const [id, name] of table) t.equal(DataType[name as keyof typeof DataType], Number(id), `${name} is ${id}`)
})

t.test('status codes and their messages', async (t) => {
  const table = rows(section('DISCONNECT and status codes'))
  t.same(table.map(([code]) => Number(code)), Object.keys(STATUS_MESSAGES).map(Number), 'every status, in order')
  for (const [code, message] of table) t.equal(message, STATUS_MESSAGES[Number(code)], `status ${code}`)
})
