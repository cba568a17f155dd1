// RFC 5424 records as HAProxy 2.6 and 3.x send them: the compact record in
// the structured data, escaping (HAProxy's E flag), hostile and broken input.

import fc from 'fast-check'
import t from 'tap'
import { MAX_PARAMS, parseSyslog, SD_ID } from '../../../src/intake/log/syslog.js'

const HDR = '<134>1 2026-12-02T09:56:18.216467+00:00 - haproxy 16168 - '
/** What HAProxy's %{+E} makes of a value. */
const esc = (v: string): string => v.replace(/["\\\]]/g, (c) => `\\${c}`)
const sd = (params: Record<string, string>, id = SD_ID): string =>
  `[${id}${Object.entries(params)
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join('')}]`

t.test('the record of HAProxy 2.6 (access log line as message) and 3.x (traceparent as message)', async (t) => {
  const rec = sd({ v: '1', compact: '00-abc-def-01', url: '/t?a=1' })
  t.same(parseSyslog(`${HDR}${rec} 127.0.0.1:40332 [02/Dec/2026:09:56:18.215] fe be/s1 0/0/0/0/0 200 49 - - ---- "GET /t HTTP/1.1"\n`), {
    kind: 'record',
    params: [
      ['v', '1'],
      ['compact', '00-abc-def-01'],
      ['url', '/t?a=1'],
    ],
  })
  t.same(parseSyslog(`${HDR}${rec} 00-abc-def-01\n`).kind, 'record')
  t.same(parseSyslog(`240 ${HDR}${rec}`).kind, 'bad', 'the octet count is the framing\'s, not the record\'s')
  t.same(parseSyslog(`${HDR}${rec}`).kind, 'record', 'a ring frame: no LF, no message')
})

t.test('escapes: quotes, backslashes, ] and what RFC 5424 keeps as two characters', async (t) => {
  const hostile = 'a "q" ]b\\c \\n é\ttab 𝄞 ["x"]'
  const r = parseSyslog(`${HDR}${sd({ v: '1', ua: hostile, url: '\\' })} -`)
  t.same(r, { kind: 'record', params: [['v', '1'], ['ua', hostile], ['url', '\\']] })
  // A backslash before another character stays, with it.
  t.same(parseSyslog(`${HDR}[${SD_ID} ua="a\\xb"]`), { kind: 'record', params: [['ua', 'a\\xb']] })
  // An unescaped ] inside the quotes: accepted (quotes delimit).
  t.same(parseSyslog(`${HDR}[${SD_ID} ua="a]b"]`), { kind: 'record', params: [['ua', 'a]b']] })
  t.same(parseSyslog(`${HDR}[${SD_ID} ua=""]`), { kind: 'record', params: [['ua', '']] }, 'an empty value')
})

t.test('any value survives HAProxy escaping and our parsing (property)', async () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 50 }), (a, b) => {
      const r = parseSyslog(`${HDR}${sd({ v: '1', ua: a, url: b })} msg\n`)
      if (r.kind !== 'record') throw new Error(`not parsed: ${JSON.stringify(r)}`)
      if (r.params[1]![1] !== a || r.params[2]![1] !== b) throw new Error('value changed')
    }),
    { numRuns: 500 },
  )
})

t.test('other SD elements are skipped; the first of ours wins', async (t) => {
  const r = parseSyslog(`${HDR}[exampleSDID@1234 bytes="49" status="200"][${SD_ID} v="1"][${SD_ID} v="2"] x`)
  t.same(r, { kind: 'record', params: [['v', '1']] })
  t.same(parseSyslog(`${HDR}[exampleSDID@1234 bytes="49"] x`), { kind: 'untraced' })
})

t.test('records without a compact record: untraced, and HAProxy ring notices', async (t) => {
  t.same(parseSyslog(`${HDR}- 127.0.0.1:1 [x] fe be/s 0/0/0/0/0 200 49 "GET / HTTP/1.1"\n`), { kind: 'untraced' })
  t.same(parseSyslog(`${HDR}-`), { kind: 'untraced' }, 'no message at all')
  t.same(
    parseSyslog(`${HDR}- Connect from 127.0.0.1:59838 to 127.0.0.1:18080 (bench/HTTP)\n`),
    { kind: 'bad', reason: 'no_log_format' },
    'HAProxy 2.6 without a log format: a line at accept, none per request',
  )
  t.same(parseSyslog('<133>1 2026-12-02T09:56:18.216467+00:00 - haproxy 1 - - 1234 events dropped'), { kind: 'dropped', count: 1234 })
  t.same(parseSyslog('<133>1 2026-12-02T09:56:18.216467+00:00 - haproxy 1 - - 1 event dropped'), { kind: 'dropped', count: 1 })
})

t.test('broken records: a reason, never an exception', async (t) => {
  const reason = (s: string) => {
    const r = parseSyslog(s)
    return r.kind === 'bad' ? r.reason : r.kind
  }
  t.equal(reason('<134>Dec  2 09:56:18 haproxy[1]: 127.0.0.1 GET /'), 'not_rfc5424', 'RFC 3164')
  t.equal(reason('127.0.0.1:1 [x] fe GET /'), 'not_rfc5424', 'raw')
  t.equal(reason(''), 'not_rfc5424')
  t.equal(reason('<134>1 '), 'truncated')
  t.equal(reason('<134>1 2026  haproxy 1 - -'), 'not_rfc5424', 'an empty header field')
  t.equal(reason(`${HDR}[${SD_ID} v="1" ua="cut sho`), 'truncated', 'a record cut by `len`')
  t.equal(reason(`${HDR}[${SD_ID} v="1"`), 'truncated')
  t.equal(reason(`${HDR}[${SD_ID} v="1\\`), 'truncated')
  t.equal(reason(`${HDR}[${SD_ID} v=1]`), 'bad_sd', 'an unquoted value')
  t.equal(reason(`${HDR}[${SD_ID} v ="1"]`), 'bad_sd')
  t.equal(reason(`${HDR}[${SD_ID}v="1"]`), 'bad_sd')
  t.equal(reason(`${HDR}[${'x'.repeat(33)} v="1"]`), 'bad_sd', 'an SD-ID over 32 characters')
  t.equal(reason(`${HDR}[${SD_ID} ${'n'.repeat(129)}="1"]`), 'bad_sd', 'a name over the bound')
  t.equal(reason(`${HDR}[${SD_ID} v="1"]x`), 'bad_sd', 'no space before the message')
  t.equal(reason(`${HDR}x`), 'bad_sd')
  t.equal(reason(`${HDR}[${SD_ID}${' a="1"'.repeat(MAX_PARAMS + 1)}]`), 'bad_sd', 'too many parameters')
})

t.test('any input: a result, never an exception (property)', async () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (tail) => {
      parseSyslog(tail)
      parseSyslog(`${HDR}${tail}`)
      parseSyslog(`${HDR}[${SD_ID} ${tail}`)
    }),
    { numRuns: 2000 },
  )
})

t.test('a long record is parsed in linear time', async (t) => {
  const big = 'x\\"'.repeat(20_000)
  const t0 = performance.now()
  const r = parseSyslog(`${HDR}${sd({ v: '1', ua: big, url: 'y'.repeat(60_000) })}`)
  t.equal(r.kind, 'record')
  t.ok(performance.now() - t0 < 500, 'well under a second')
})
