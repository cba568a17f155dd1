// The agent hung (SIGSTOP: the kernel still accepts its connections, nothing
// is answered) behind the real HAProxy, with each shipped profile unchanged:
// the worst case. Requests wait at most `timeout processing` until HAProxy's
// health check (no HELLO back within `timeout check`, twice in a row) marks
// the agent DOWN, within 2 s; marking it DOWN cuts its SPOP sessions
// (on-marked-down shutdown-sessions), so from then on requests cost under
// 5 ms more than with a healthy agent. After SIGCONT it is marked UP and
// requests are traced again. HAPROXY_BIN selects another HAProxy.

import { performance } from 'node:perf_hooks'
import t from 'tap'
import { expectResumed, measureFault, PROFILES, startFaultStack } from '../helpers/agent-faults.js'
import { requireHaproxy } from '../helpers/haproxy.js'

const bin = requireHaproxy(t)

for (const profile of PROFILES) {
  t.test(`${profile.name}: the agent stopped with SIGSTOP, then continued`, { skip: bin === null }, async (t) => {
    const stack = await startFaultStack(t, bin!, profile)
    const agent = stack.agent
    t.teardown(() => {
      agent.child.kill('SIGCONT')
    })
    const fault = await measureFault(t, stack, 'hang', () => agent.child.kill('SIGSTOP'))
    const recoveredAt = performance.now()
    agent.child.kill('SIGCONT')
    await expectResumed(t, stack, 'hang', recoveredAt, fault)
  })
}
