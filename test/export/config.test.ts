import t from 'tap'
import { DEFAULT_EXPORT_CONFIG, exportConfigFromEnv, parseKeyValueList } from '../../src/export/config.js'

t.test('defaults: OTLP http/protobuf to localhost:4318, service haproxy', async (t) => {
  const c = exportConfigFromEnv({})
  t.same(c, DEFAULT_EXPORT_CONFIG)
  t.equal(c.endpoint, 'http://localhost:4318/v1/traces')
  t.equal(c.protocol, 'http/protobuf')
  t.same(c.resource, { 'service.name': 'haproxy' })
})

t.test('standard variables', async (t) => {
  const c = exportConfigFromEnv({
    OTEL_TRACES_EXPORTER: 'console',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
    OTEL_EXPORTER_OTLP_HEADERS: 'api-key=secret%20value,x-tenant=a',
    OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
    OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    OTEL_BSP_MAX_QUEUE_SIZE: '1000',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '100',
    OTEL_BSP_SCHEDULE_DELAY: '250',
    OTEL_RESOURCE_ATTRIBUTES: 'service.name=ignored,deployment.environment=prod',
    OTEL_SERVICE_NAME: 'edge-lb',
  })
  t.equal(c.exporter, 'console')
  t.equal(c.protocol, 'http/json')
  t.equal(c.endpoint, 'http://collector:4318/v1/traces', 'base endpoint + /v1/traces')
  t.same(c.headers, { 'api-key': 'secret value', 'x-tenant': 'a' })
  t.equal(c.timeoutMs, 2500)
  t.equal(c.compression, 'gzip')
  t.same([c.maxQueueSize, c.maxBatchSize, c.scheduledDelayMs], [1000, 100, 250])
  t.same(c.resource, { 'service.name': 'edge-lb', 'deployment.environment': 'prod' }, 'OTEL_SERVICE_NAME wins')
})

t.test('signal-specific variables win over the general ones', async (t) => {
  const c = exportConfigFromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b:9999/custom/path',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '3000',
    OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=1',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=2',
  })
  t.equal(c.endpoint, 'https://b:9999/custom/path', 'signal endpoint used as is')
  t.equal(c.protocol, 'http/protobuf')
  t.equal(c.timeoutMs, 3000)
  t.same(c.headers, { a: '1', b: '2' })
})

t.test('bad values are refused with the variable name', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER: expected one of otlp, console, file, none/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL: expected one of http\/protobuf, http\/json/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, /OTEL_EXPORTER_OTLP_ENDPOINT: not a URL/],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://x/' }, /expected http:\/\/ or https:\/\//],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '-1' }, /OTEL_BSP_MAX_QUEUE_SIZE: expected an integer >= 1/],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: '1.5' }, /OTEL_EXPORTER_OTLP_TIMEOUT/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /OTEL_EXPORTER_OTLP_HEADERS: expected key=value/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20' }, /must not exceed the queue size/],
  ]
  for (const [env, msg] of bad) t.throws(() => exportConfigFromEnv(env), { name: 'ConfigError', message: msg })
  t.same(parseKeyValueList('X', ' a = b , ,c=%3D '), { a: 'b', c: '=' })
  t.equal(exportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'none,otlp' }).exporter, 'none', 'first of a list')
})
