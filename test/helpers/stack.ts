// The whole chain for end-to-end tests: an OTLP receiver, the daemon
// in-process exporting to it, an origin recording what it receives, and the
// real HAProxy with one of the shipped configurations. Everything is torn
// down with the test.

import type { Test } from 'tap'
import { type Config, DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { type Daemon, startDaemon } from '../../src/daemon/main.js'
import { freePort, type HaproxyProcess, startHaproxy } from './haproxy.js'
import { silentLogger } from './logger.js'
import { type Origin, startOrigin } from './origin.js'
import { type OtlpReceiver, startOtlpReceiver } from './otlp-receiver.js'
import { sleep } from './wait.js'

export interface Stack {
  receiver: OtlpReceiver
  daemon: Daemon
  origin: Origin
  haproxy: HaproxyProcess
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
  const daemon = await startDaemon(config, silentLogger())
  t.teardown(() => daemon.close())
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const fePort = await freePort()
  const haproxy = await startHaproxy({
    bin: o.bin,
    config: o.config,
    env: {
      HAPROXY_BIND: `127.0.0.1:${fePort}`,
      BACKEND_ADDR: `127.0.0.1:${origin.port}`,
      AGENT_ADDR: `127.0.0.1:${(daemon.address as { port: number }).port}`,
      SPOE_CONF: o.spoe,
      SPOA_TIMEOUT_PROCESSING: '2s',
      ...o.env,
    },
    waitPort: fePort,
  })
  t.teardown(() => haproxy.stop())
  // HAProxy's first health check may have run before it could connect: give it its downinter.
  await sleep(600)
  return { receiver, daemon, origin, haproxy, fePort }
}
