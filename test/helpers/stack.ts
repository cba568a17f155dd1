// The whole chain for end-to-end tests: an OTLP receiver, the daemon
// in-process exporting to it, an origin recording what it receives, and the
// real HAProxy with one of the shipped configurations, returned once HAProxy
// has seen the agent UP. Everything is torn down with the test. And the
// signal that a request has caused no span: a later request that surely is
// traced has reached the receiver, and the daemon's export is idle.

import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { type Haproxy, startHaproxy } from '../../harness/haproxy.js'
import { waitServerUp } from '../../harness/haproxy-stats.js'
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'
import { type Config, DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { type Daemon, startDaemon } from '../../src/daemon/main.js'
import { get } from './http.js'
import { silentLogger } from './logger.js'
import { type Origin, startOrigin } from './origin.js'

export interface Stack {
  receiver: OtlpReceiver
  daemon: Daemon
  origin: Origin
  haproxy: Haproxy
  fePort: number
}

export interface StackOptions {
  bin: string
  /** HAProxy configuration, e.g. haproxy/haproxy.cfg. */
  config: string
  /** SPOE configuration, e.g. haproxy/spoe.cfg. */
  spoe: string
  /** Changes to the daemon's configuration (export goes to the receiver whatever is set here). */
  daemon?: (c: Config) => Config
  /** More HAProxy environment. */
  env?: Record<string, string>
  /** startDaemon's options (the tracing thread's bounds). */
  daemonOpts?: Parameters<typeof startDaemon>[2]
}

export async function startStack(t: Test, o: StackOptions): Promise<Stack> {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  let config: Config = {
    ...DEFAULT_CONFIG,
    listen: { host: '127.0.0.1', port: 0 },
    export: { ...DEFAULT_CONFIG.export, exporter: 'otlp', endpoint: receiver.tracesUrl, scheduledDelayMs: 50 },
  }
  if (o.daemon) config = o.daemon(config)
  const daemon = await startDaemon(config, silentLogger(), o.daemonOpts)
  t.teardown(() => daemon.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const haproxy = await startHaproxy({
    bin: o.bin,
    config: o.config,
    bind: (p) => ({ HAPROXY_BIND: `127.0.0.1:${p}` }),
    env: {
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_ADDR: `127.0.0.1:${(daemon.address as { port: number }).port}`,
      SPOE_CONF: o.spoe,
      SPOA_TIMEOUT_PROCESSING: '2s',
      ...o.env,
    },
  })
  t.teardown(() => haproxy.stop())
  // The SPOE events are guarded by srv_is_up(): a request before the first passed check is not traced.
  await waitServerUp(haproxy.stats, 'spoa-tracer', 'agent')
  return { receiver, daemon, origin, haproxy, fePort: haproxy.port }
}

/** Waits (bounded) until every span the daemon has queued has been answered by the collector. */
export async function exportIdle(daemon: Daemon, ms = 10_000): Promise<boolean> {
  const e = daemon.exportStats
  return eventually(() => e.queueDepth === 0 && e.inFlight === 0, ms)
}

/**
 * After a request that should cause no span: sends one that surely is traced
 * (a sampled W3C and B3 parent, on a path of its own) and waits for its spans
 * and for the daemon's export to be idle, so that any span of the earlier
 * request has arrived by then. Resolves with the spans that are not the
 * marker's; throws when the marker's never come.
 */
export async function spansBeforeMarker(receiver: OtlpReceiver, daemon: Daemon, fePort: number): Promise<ReceivedSpan[]> {
  const traceId = randomBytes(16).toString('hex')
  const parent = randomBytes(8).toString('hex')
  const res = await get(`http://127.0.0.1:${fePort}/marker/${traceId}`, { traceparent: `00-${traceId}-${parent}-01`, b3: `${traceId}-${parent}-1` })
  if (res.status !== 200) throw new Error(`the marker request got ${res.status}`)
  await receiver.waitForSpan((s) => s.traceId === traceId, 10_000)
  if (!(await exportIdle(daemon))) throw new Error('export not idle 10 s after the marker')
  return receiver.spans.filter((s) => s.traceId !== traceId)
}
