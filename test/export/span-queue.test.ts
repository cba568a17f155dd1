// The span queue's retry timer against a pool that takes a due retry first:
// the timer then finds nothing waiting and must not trip over it. A fake
// pool, so that the order of events is the test's; the queue's faults with
// real workers and a real collector are in pipeline.test.ts.

import t from 'tap'
import { BodyPool } from '../../src/export/body-pool.js'
import { DEFAULT_EXPORT_CONFIG } from '../../src/export/config.js'
import type { Batch, ExportPool } from '../../src/export/pool.js'
import { SpanQueue } from '../../src/export/span-queue.js'
import { ExportStats } from '../../src/export/stats.js'
import { eventually } from '../../harness/wait.js'
import { silentLogger } from '../helpers/logger.js'
import { tree } from '../helpers/spans.js'

t.test('a retry sent by a capacity event before its timer: the timer finds nothing and goes quietly', async (t) => {
  const dispatched: Batch[] = []
  const pool = {
    onCapacity: () => {},
    onRetry: null,
    onSuccess: () => {},
    canTake: () => true,
    dispatch: (b: Batch) => dispatched.push(b) > 0,
    bodies: new BodyPool(),
    resourceDefaults: {},
  } as unknown as ExportPool
  const config = { ...DEFAULT_EXPORT_CONFIG, exporter: 'file' as const, scheduledDelayMs: 1 }
  new SpanQueue(pool, config, new ExportStats(), silentLogger(), undefined, 50).push(tree('a'.repeat(32)))
  t.ok(await eventually(() => dispatched.length === 1, 2000), 'the batch went')
  // It failed, and the collector asked for 100 ms: the retry timer is armed for then.
  const outcome = pool.onRetry!({ kind: 'encoded', body: new Uint8Array(8), count: 4, attempt: 1, retryAfterMs: 100 })
  t.equal(outcome.kind, 'retry')
  const due = Date.now() + 100
  while (Date.now() <= due) {} // past its time, with the timer not run yet: this thread is busy
  pool.onCapacity() // a worker has room: the due retry goes now
  t.equal(dispatched.length, 2, 'the retry went with the capacity event')
  // Timers run in order of expiry: the queue's, due earlier, runs before this one.
  await new Promise((resolve) => setTimeout(resolve, 1))
  t.equal(dispatched.length, 2, 'nothing sent twice, and no exception from the timer')
})
