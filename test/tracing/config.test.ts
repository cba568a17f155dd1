// Tracing settings from OpenTelemetry's variables and from options:
// propagators, sampler and ratio, span limits. Pure functions: what is read,
// what wins, what is refused (with the variable or option named).

import t from 'tap'
import {
  DEFAULT_TRACING_CONFIG,
  propagatorsFrom,
  ratioFrom,
  samplerFrom,
  spanLimitsFromEnv,
  tracingConfigFromEnv,
} from '../../src/tracing/config.js'
import { DEFAULT_SPAN_LIMITS } from '../../src/tracing/trace.js'
import { ConfigError } from '../../src/util/config-error.js'

t.test('no variables: the defaults, as copies', async (t) => {
  const c = tracingConfigFromEnv({})
  t.same(c, { propagators: ['tracecontext', 'baggage'], sampler: { name: 'parentbased_always_on', ratio: 1, rateLimit: 0 } })
  t.not(c.propagators, DEFAULT_TRACING_CONFIG.propagators, 'the default list is not shared')
  t.not(c.sampler, DEFAULT_TRACING_CONFIG.sampler, 'nor the sampler')
  t.same(tracingConfigFromEnv({ OTEL_PROPAGATORS: '  ', OTEL_TRACES_SAMPLER: '', OTEL_TRACES_SAMPLER_ARG: ' ' }), c, 'blank variables count as unset')
})

t.test('OTEL_PROPAGATORS', async (t) => {
  t.same(tracingConfigFromEnv({ OTEL_PROPAGATORS: 'b3, TraceContext,b3' }).propagators, ['b3', 'tracecontext'], 'order kept, case and repeats ignored')
  t.same(tracingConfigFromEnv({ OTEL_PROPAGATORS: 'none' }).propagators, [], 'none: no propagation')
  t.same(propagatorsFrom('--propagators', 'jaeger,b3multi,baggage'), ['jaeger', 'b3multi', 'baggage'])
  t.throws(() => tracingConfigFromEnv({ OTEL_PROPAGATORS: 'tracecontext,xray' }), {
    name: 'ConfigError',
    option: 'OTEL_PROPAGATORS',
    message: /unknown propagator "xray"; expected tracecontext, baggage, b3, b3multi, jaeger or none/,
  })
  t.throws(() => propagatorsFrom('--propagators', 'ottrace'), { name: 'ConfigError', option: '--propagators' }, 'the option named is the one given')
})

t.test('OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG', async (t) => {
  t.same(tracingConfigFromEnv({ OTEL_TRACES_SAMPLER: ' TraceIdRatio ', OTEL_TRACES_SAMPLER_ARG: '0.25' }).sampler, {
    name: 'traceidratio',
    ratio: 0.25,
    rateLimit: 0,
  })
  t.equal(tracingConfigFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }).sampler.ratio, 0)
  t.same(
    tracingConfigFromEnv({ OTEL_TRACES_SAMPLER: 'always_off', OTEL_TRACES_SAMPLER_ARG: 'not a number' }).sampler,
    { name: 'always_off', ratio: 1, rateLimit: 0 },
    'the argument is read only for a ratio sampler: ignored here, even malformed',
  )
  const base = { propagators: [], sampler: { name: 'traceidratio' as const, ratio: 0.5, rateLimit: 7 } }
  t.same(tracingConfigFromEnv({ OTEL_TRACES_SAMPLER_ARG: '0.1' }, base).sampler, { name: 'traceidratio', ratio: 0.1, rateLimit: 7 }, 'a ratio sampler from the base (options, config file) takes the variable')
  t.same(base.sampler.ratio, 0.5, 'the base is not changed')
  t.throws(() => tracingConfigFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' }), {
    option: 'OTEL_TRACES_SAMPLER',
    message: /expected one of always_on, always_off, traceidratio, .*, got "sometimes"/,
  })
  for (const bad of ['1.5', '-0.1', 'half', 'NaN', 'Infinity']) {
    t.throws(() => tracingConfigFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: bad }), { option: 'OTEL_TRACES_SAMPLER_ARG', message: /a ratio from 0 to 1/ }, `ratio "${bad}"`)
  }
})

t.test('samplerFrom and ratioFrom, for options and config files', async (t) => {
  t.equal(samplerFrom('--sampler', 'ALWAYS_ON'), 'always_on')
  t.throws(() => samplerFrom('sampler', ''), { name: 'ConfigError', option: 'sampler' })
  t.equal(ratioFrom('--sampler-ratio', 1), 1, 'a number from a config file')
  t.equal(ratioFrom('--sampler-ratio', ' 0.001 '), 0.001)
  t.throws(() => ratioFrom('--sampler-ratio', 2), ConfigError)
})

t.test('span limits: OTEL_SPAN_* first, then the general OTEL_ATTRIBUTE_*, then the base', async (t) => {
  t.same(spanLimitsFromEnv({}, DEFAULT_SPAN_LIMITS), DEFAULT_SPAN_LIMITS, 'nothing set: the base')
  const base = { maxAttributes: 1, maxAttributeLength: 2, maxEvents: 3, maxLinks: 4 }
  t.same(
    spanLimitsFromEnv(
      {
        OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '64',
        OTEL_ATTRIBUTE_COUNT_LIMIT: '32',
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '4096',
        OTEL_SPAN_EVENT_COUNT_LIMIT: ' 0 ',
        OTEL_SPAN_LINK_COUNT_LIMIT: '',
      },
      base,
    ),
    { maxAttributes: 64, maxAttributeLength: 4096, maxEvents: 0, maxLinks: 4 },
    'span-specific wins; the general one applies when it is unset; 0 is a value; blank is unset',
  )
  t.same(spanLimitsFromEnv({ OTEL_ATTRIBUTE_COUNT_LIMIT: '32' }, base).maxAttributes, 32)
  t.same(spanLimitsFromEnv({ OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '100', OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '5' }, base).maxAttributeLength, 100)
  for (const bad of ['-1', '1.5', 'ten']) {
    t.throws(() => spanLimitsFromEnv({ OTEL_SPAN_LINK_COUNT_LIMIT: bad }, base), { option: 'OTEL_SPAN_LINK_COUNT_LIMIT', message: /an integer >= 0/ }, `"${bad}"`)
  }
  t.throws(() => spanLimitsFromEnv({ OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: 'x', OTEL_ATTRIBUTE_COUNT_LIMIT: '3' }, base), { name: 'ConfigError', option: 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT' }, 'a bad span-specific value is not skipped for the general one')
})
