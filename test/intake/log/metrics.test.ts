// The log intake on /metrics and in the statistics line: present when it is
// on (every rejection reason from 0), absent when it is off.

import { createSocket } from 'node:dgram'
import t from 'tap'
import { DEFAULT_CONFIG } from '../../../src/daemon/config.js'
import { startDaemon } from '../../../src/daemon/main.js'
import { startMonitor } from '../../../src/daemon/monitor.js'
import { http } from '../../helpers/http.js'
import { captureLogger, silentLogger } from '../../helpers/logger.js'
import { eventually } from '../../../harness/wait.js'

const base = { ...DEFAULT_CONFIG, listen: { host: '127.0.0.1', port: 0 }, export: { ...DEFAULT_CONFIG.export, exporter: 'none' as const }, metricsAddress: { host: '127.0.0.1', port: 0 } }

t.test('on: log_records_* series, from 0, counting', async (t) => {
  const d = await startDaemon({ ...base, logIntake: { ...DEFAULT_CONFIG.logIntake, addresses: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] } }, silentLogger())
  t.teardown(() => d.close())
  const port = (d.logIntake!.addresses[0] as { port: number }).port
  const s = createSocket('udp4')
  await new Promise<void>((r) => s.send('<134>Dec  2 09:56:18 haproxy[1]: not 5424\n', port, '127.0.0.1', () => r()))
  s.close()
  t.ok(await eventually(() => d.logIntake!.stats.records === 1))
  const body = (await http(d.metricsAddress!, '/metrics')).body
  t.match(body, /spoa_tracer_log_records_received_total 1\n/)
  t.match(body, /spoa_tracer_log_records_rejected_total\{reason="not_rfc5424"\} 1\n/)
  t.match(body, /spoa_tracer_log_records_rejected_total\{reason="bad_version"\} 0\n/)
  t.match(body, /spoa_tracer_log_records_dropped_total\{by="kernel"\} 0\n/)
  const log = captureLogger('info')
  const stop = startMonitor(d, log.logger, 50)
  t.ok(await eventually(() => log.lines.some((l) => l.msg === 'statistics')))
  stop()
  t.has(log.lines.find((l) => l.msg === 'statistics'), { logRecordsRejected: 1, logRecordsTraced: 0 })
})

t.test('off: no log_records_* series, no log figures', async (t) => {
  const d = await startDaemon(base, silentLogger())
  t.teardown(() => d.close())
  t.equal(d.logIntake, null)
  t.notMatch((await http(d.metricsAddress!, '/metrics')).body, /log_records/)
})
