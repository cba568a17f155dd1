// The log record's parameters as the compact record every intake shares.

import t from 'tap'
import { readLogRecord } from '../../../src/intake/log/record.js'

t.test('fields by the SPOE message names; v, id and tag.<key> are the log record own', async (t) => {
  const r = readLogRecord([
    ['v', '1'],
    ['id', 'uid-7'],
    ['compact', '00-4bf92f3577b34da6a3ce929d0e0e4736-aaaaaaaaaaaaaaaa-01'],
    ['start', '1700000000000000'],
    ['end', '1700000000060000'],
    ['status', '503'],
    ['tls', '1'],
    ['client_port', ''],
    ['tag.tenant', 'acme'],
    ['tag.', 'ignored'],
    ['__proto__', 'x'],
    ['constructor', 'x'],
    ['future_field', 'x'],
  ])
  if ('error' in r) throw new Error(r.error)
  t.equal(r.uniqueId, 'uid-7')
  t.same([r.fields.startUs, r.fields.endUs, r.fields.status, r.fields.tls, r.fields.clientPort], [1700000000000000, 1700000000060000, 503, true, 0])
  t.same(r.fields.tags, [['tenant', ['acme']]])
})

t.test('the version: 1 only, and it must be there', async (t) => {
  t.same(readLogRecord([['v', '2']]), { error: 'bad_version' })
  t.same(readLogRecord([['compact', 'x']]), { error: 'bad_version' })
  t.notOk('error' in readLogRecord([['v', '1']]))
})
