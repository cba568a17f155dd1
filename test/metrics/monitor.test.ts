// The -i statistics line carries the key figures of /metrics, in one line.

import t from 'tap'
import { nineSpanFlow } from '../../harness/flows/nine-span.js'
import { DEFAULT_CONFIG } from '../../src/daemon/config.js'
import { DEFAULT_EXPORT_CONFIG } from '../../src/export/config.js'
import { startDaemon } from '../../src/daemon/main.js'
import { startMonitor } from '../../src/daemon/monitor.js'
import { FakeHaproxy } from '../../harness/spop-client.js'
import { captureLogger, silentLogger } from '../helpers/logger.js'
import { startOtlpReceiver } from '../../harness/otlp-receiver.js'
import { eventually } from '../../harness/wait.js'

t.test('statistics line', async (t) => {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const d = await startDaemon(
    {
      ...DEFAULT_CONFIG,
      listen: { host: '127.0.0.1', port: 0 },
      export: { ...DEFAULT_EXPORT_CONFIG, endpoint: receiver.tracesUrl, scheduledDelayMs: 20, maxQueueSize: 1000 },
    },
    silentLogger(),
  )
  t.teardown(() => d.close())
  const cap = captureLogger('info')
  const stop = startMonitor(d, cap.logger, 100)
  t.teardown(stop)
  const h = await FakeHaproxy.connect(d.address)
  await h.hello()
  let sid = 1
  for (const messages of nineSpanFlow({ uniqueId: 'mon-1' })) {
    h.notify(sid++, 1, messages)
    await h.next()
  }
  await receiver.waitForSpans(9, 5000)
  const stats = () => cap.lines.filter((l) => l.msg === 'statistics')
  t.ok(await eventually(() => stats().some((l) => l.spansExported === 9), 3000), 'a line after the export')
  const withAcks = stats().find((l) => typeof l.ackP99Us === 'number' && l.ackP99Us > 0)
  t.ok(withAcks, 'an interval with ACKs has latency estimates')
  t.ok((withAcks!.ackP50Us as number) > 0 && (withAcks!.ackP50Us as number) <= (withAcks!.ackP99Us as number), 'p50 <= p99')
  t.ok((withAcks!.notifyPerSec as number) > 0, 'NOTIFY/s')
  const line = stats().at(-1)!
  for (const key of [
    'connections', 'notifyPerSec', 'ackP50Us', 'ackP99Us', 'protocolErrors', 'openTrees', 'openSpans', 'spansExported',
    'spansDropped', 'queueDepth', 'queueCapacity', 'exportFailures', 'workersUp', 'rssMb',
  ]) {
    t.type(line[key], 'number', key)
  }
  t.same(
    [line.connections, line.spansExported, line.spansDropped, line.queueCapacity, line.workersUp, line.openTrees],
    [1, 9, 0, 1000, 1, 0],
  )
  h.destroy()
})
