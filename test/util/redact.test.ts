// Secrets never printed: URL credentials and query values, header values.

import t from 'tap'
import { redactHeaders, redactUrl, redactUrlsIn } from '../../src/util/redact.js'

t.test('URLs: userinfo and query values masked, the rest kept', async (t) => {
  t.equal(redactUrl('http://user:password@collector:4318/v1/traces'), 'http://***@collector:4318/v1/traces')
  t.equal(redactUrl('https://token@collector/v1/traces'), 'https://***@collector/v1/traces', 'a user alone may be a token')
  t.equal(redactUrl('https://c/v1/traces?api_key=abc&x=1'), 'https://c/v1/traces?api_key=***&x=***')
  t.equal(redactUrl('http://localhost:4318/v1/traces'), 'http://localhost:4318/v1/traces', 'nothing to hide: unchanged')
  t.equal(redactUrl('http://u:p@[::1]:4318/v1/traces'), 'http://***@[::1]:4318/v1/traces')
  t.equal(redactUrl('not a url u:p@x'), 'not a url u:p@x', 'no scheme: nothing that looks like a URL')
  t.equal(redactUrl('ftp//u:p@host'), 'ftp//u:p@host')
})

t.test('free text: every scheme://userinfo@ masked', async (t) => {
  t.equal(redactUrlsIn('POST http://a:b@h1/x then https://c@h2/y failed'), 'POST http://***@h1/x then https://***@h2/y failed')
  t.equal(redactUrlsIn('no url here'), 'no url here')
})

t.test('headers: names kept, values masked', async (t) => {
  t.same(redactHeaders({ authorization: 'Bearer abc', 'x-scope': 'tenant' }), { authorization: '***', 'x-scope': '***' })
  t.same(redactHeaders({}), {})
})
