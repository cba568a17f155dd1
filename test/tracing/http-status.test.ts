// Span status from http.response.status_code, through the grammar: SERVER
// spans fail on 5xx only, CLIENT spans on 4xx and 5xx, with error.type.

import t from 'tap'
import { type Message, type NamedValue, type TypedValue, tv } from '../../src/spop/index.js'
import { GrammarInterpreter } from '../../src/tracing/grammar.js'
import { httpErrorType } from '../../src/tracing/http-status.js'
import { TraceStore } from '../../src/tracing/trace-store.js'
import { MemorySink } from '../helpers/memory-sink.js'

const a = (name: string, v: TypedValue | string): NamedValue => ({ name, ...(typeof v === 'string' ? tv.string(v) : v) })
const m = (...args: NamedValue[]): Message => ({ name: 'm', args })

function tree(status: TypedValue, extra: NamedValue[] = []) {
  const sink = new MemorySink()
  const interp = new GrammarInterpreter(new TraceStore({ sink }))
  const code = (span: string): NamedValue[] => [a('span', span), a('tag', 'http.response.status_code'), a('', status)]
  interp.apply('e', m(a('id', 'r'), a('span', 'root'), a('span', 'Backend HTTP request'), a('child-of', 'root'), a('span', 'work'), a('child-of', 'root')), 1e15)
  interp.apply('e', m(a('id', 'r'), ...code('root'), ...code('Backend HTTP request'), ...code('work'), ...extra, a('finish', '*')), 1e15 + 10)
  return (name: string) => sink.byName(name)
}

t.test('SERVER: 5xx only; CLIENT: 4xx and 5xx; INTERNAL: never', async (t) => {
  for (const [status, server, client] of [[200, 0, 0], [301, 0, 0], [404, 0, 2], [499, 0, 2], [500, 2, 2], [504, 2, 2]] as const) {
    const span = tree(tv.int64(status))
    t.same([span('root').kind, span('Backend HTTP request').kind, span('work').kind], ['server', 'client', 'internal'])
    t.same([span('root').status.code, span('Backend HTTP request').status.code, span('work').status.code], [server, client, 0], `${status}: status`)
    t.same(
      [span('root').attributes['error.type'], span('Backend HTTP request').attributes['error.type'], span('work').attributes['error.type']],
      [server ? String(status) : undefined, client ? String(status) : undefined, undefined],
      `${status}: error.type`,
    )
  }
})

t.test('an explicit error tag or error.type wins; the C agent names are left alone', async (t) => {
  const span = tree(tv.int64(404), [a('span', 'root'), a('tag', 'error'), a('', tv.bool(true)), a('span', 'Backend HTTP request'), a('tag', 'error.type'), a('', 'not_found')])
  t.equal(span('root').status.code, 2, 'error=true on a SERVER span with a 404 stays an error')
  t.equal(span('root').attributes['error.type'], undefined)
  t.equal(span('Backend HTTP request').attributes['error.type'], 'not_found', 'a set error.type is kept')
  const sink = new MemorySink()
  const interp = new GrammarInterpreter(new TraceStore({ sink }))
  interp.apply('e', m(a('id', 'r'), a('span', 'root'), a('tag', 'http.status_code'), a('', tv.int64(503)), a('finish', '*')), 1e15)
  t.equal(sink.byName('root').status.code, 0, 'http.status_code (the old name, spoe.cfg) does not set the status')
})

t.test('httpErrorType: integers and 3-digit strings; nothing for nonsense', async (t) => {
  t.equal(httpErrorType('server', 503), '503')
  t.equal(httpErrorType('server', '503'), '503')
  t.equal(httpErrorType('client', 404), '404')
  t.equal(httpErrorType('server', 404), null)
  t.equal(httpErrorType('client', 'x'), null)
  t.equal(httpErrorType('client', 0), null)
  t.equal(httpErrorType('client', 40400), null)
  t.equal(httpErrorType('internal', 500), null)
})
