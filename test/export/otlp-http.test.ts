// One OTLP/HTTP request, against the real receiver: what counts as success,
// as worth retrying (429/502/503/504, network errors, timeouts, with the
// collector's Retry-After), as final; headers, credentials, gzip; partial
// success reported. No retries inside: the span queue decides.

import { createServer, type IncomingHttpHeaders } from 'node:http'
import t, { type Test } from 'tap'
import { createOtlpEncoder } from '../../src/export/otel.js'
import { DEFAULT_EXPORT_CONFIG } from '../../src/export/config.js'
import { OtlpHttpTransport, type OtlpHttpOptions, retryAfterMs } from '../../src/export/otlp-http.js'
import { freePort } from '../../harness/ports.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { tree } from '../helpers/spans.js'

const scope = { name: 'spoa-tracer', version: '0.0.0' }
const body = createOtlpEncoder(DEFAULT_EXPORT_CONFIG, scope)(tree())

function transport(t: Test, over: Partial<OtlpHttpOptions> & { url: string }): OtlpHttpTransport {
  const tr = new OtlpHttpTransport({
    contentType: 'application/x-protobuf',
    headers: {},
    compression: 'none',
    timeoutMs: 2000,
    maxConcurrent: 2,
    userAgent: 'spoa-tracer/0.0.0',
    ...over,
  })
  t.teardown(() => tr.shutdown())
  return tr
}

t.test('200: ok; gzip when asked', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  t.same(await transport(t, { url: receiver.tracesUrl }).send(body), { ok: true, retryable: false })
  t.same(await transport(t, { url: receiver.tracesUrl, compression: 'gzip' }).send(body), { ok: true, retryable: false })
  t.same(receiver.requests.map((r) => [r.status, r.encoding, r.spanCount]), [[200, 'identity', 4], [200, 'gzip', 4]])
})

t.test('429, 502, 503, 504: retryable, with Retry-After; others final, with the reason', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const tr = transport(t, { url: receiver.tracesUrl })
  for (const status of [429, 502, 503, 504]) {
    receiver.setResponse({ status, retryAfterSeconds: 7 })
    const r = await tr.send(body)
    t.match(r, { ok: false, retryable: true, retryAfterMs: 7000, error: new RegExp(`^HTTP ${status} `) }, String(status))
  }
  receiver.setResponse({ status: 400 })
  t.same(await tr.send(body), { ok: false, retryable: false, error: 'HTTP 400 Bad Request: injected HTTP 400' }, 'the google.rpc.Status message')
  receiver.setResponse({ status: 500 })
  t.match(await tr.send(body), { ok: false, retryable: false, error: /^HTTP 500 / })
})

t.test('network errors and timeouts: retryable, said in one line', async (t) => {
  const port = await freePort()
  t.match(await transport(t, { url: `http://127.0.0.1:${port}/v1/traces` }).send(body), { ok: false, retryable: true, error: `connect ECONNREFUSED 127.0.0.1:${port}` })
  const slow = await startOtlpReceiver({ response: { delayMs: 3000 } })
  t.teardown(() => slow.close())
  const started = Date.now()
  t.same(await transport(t, { url: slow.tracesUrl, timeoutMs: 300 }).send(body), { ok: false, retryable: true, error: 'no answer within 300 ms (--export-timeout)' })
  t.ok(Date.now() - started < 2000, 'given up at the timeout')
})

t.test('headers: the configured ones, Basic authentication from the URL, ours last', async (t) => {
  let seen: IncomingHttpHeaders = {}
  const server = createServer((req, res) => {
    seen = req.headers
    req.resume()
    req.on('end', () => res.end())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const tr = transport(t, { url: `http://user:pa%20ss@127.0.0.1:${port}/v1/traces`, headers: { authorization: 'Bearer x', 'content-type': 'text/plain', 'x-scope': 't1' } })
  t.same(await tr.send(body), { ok: true, retryable: false })
  t.equal(seen['x-scope'], 't1')
  t.equal(seen['content-type'], 'application/x-protobuf', 'the content type is not the configuration\'s to change')
  t.equal(seen['user-agent'], 'spoa-tracer/0.0.0')
  t.equal(seen['content-length'], String(body.byteLength))
  t.equal(seen.authorization, 'Bearer x', 'an explicit authorization header wins over the URL')
  const basic = transport(t, { url: `http://user:pa%20ss@127.0.0.1:${port}/v1/traces` })
  await basic.send(body)
  t.equal(seen.authorization, `Basic ${Buffer.from('user:pa ss').toString('base64')}`, 'the URL credentials as Basic authentication')
})

t.test('partial success: a success that says how many spans the collector rejected', async (t) => {
  const receiver = await startOtlpReceiver({ response: { body: '{"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}}' } })
  t.teardown(() => receiver.close())
  const r = await transport(t, { url: receiver.tracesUrl, contentType: 'application/json' }).send(createOtlpEncoder({ ...DEFAULT_EXPORT_CONFIG, protocol: 'http/json' }, scope)(tree()))
  t.same(r, { ok: true, retryable: false, warning: 'collector rejected 2 span(s): too old' })
})

t.test('Retry-After: seconds or an HTTP date, capped', async (t) => {
  t.equal(retryAfterMs('3'), 3000)
  t.equal(retryAfterMs(new Date(10_000 + 5000).toUTCString(), 10_000), 5000)
  t.equal(retryAfterMs('999999'), 300_000, 'an hour is asked: the queue waits 5 minutes at most')
  t.equal(retryAfterMs('soon'), undefined)
  t.equal(retryAfterMs(undefined), undefined)
})
