// The agent killed (SIGKILL) behind the real HAProxy, with each shipped
// profile unchanged: requests wait at most `timeout processing` until HAProxy
// marks the agent DOWN, which it does within 2 s (a refused connection marks
// it at once: observe layer4, on-error mark-down); from then on they cost
// under 5 ms more than with a healthy agent (the SPOE events are skipped);
// a new agent on the same port (a restart) is marked UP and traced again.
// HAPROXY_BIN selects another HAProxy (e.g. a 3.2 build).

import { performance } from 'node:perf_hooks'
import t from 'tap'
import { expectResumed, measureFault, PROFILES, startFaultStack } from '../helpers/agent-faults.js'
import { requireHaproxy } from '../helpers/haproxy.js'

const bin = requireHaproxy(t)

for (const profile of PROFILES) {
  t.test(`${profile.name}: the agent killed with SIGKILL, then restarted`, { skip: bin === null }, async (t) => {
    const stack = await startFaultStack(t, bin!, profile)
    const killed = stack.agent
    const fault = await measureFault(t, stack, 'kill', () => killed.child.kill('SIGKILL'))
    await killed.exited
    await stack.restartAgent()
    const recoveredAt = performance.now() // the agent listens again
    await expectResumed(t, stack, 'kill', recoveredAt, fault)
  })
}
