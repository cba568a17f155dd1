// The agent gone and its port closed (a graceful stop: connections are then
// refused) behind the real HAProxy, with each shipped profile unchanged:
// requests wait at most `timeout processing` until HAProxy marks the agent
// DOWN, within 2 s (the first refused connection does: observe layer4,
// on-error mark-down, retries 0); then they cost under 5 ms more than with a
// healthy agent, for as long as nothing listens. An agent started again on
// the port is marked UP and traced. HAPROXY_BIN selects another HAProxy.

import { performance } from 'node:perf_hooks'
import t from 'tap'
import { expectResumed, measureFault, PROFILES, startFaultStack, TIMEOUT_PROCESSING_MS, type Timed, timedGet } from '../helpers/agent-faults.js'
import { waitForPort } from '../../harness/ports.js'
import { requireHaproxy } from '../helpers/haproxy.js'

const bin = requireHaproxy(t)

for (const profile of PROFILES) {
  t.test(`${profile.name}: the agent stopped, its port refusing connections, then started again`, { skip: bin === null }, async (t) => {
    const stack = await startFaultStack(t, bin!, profile)
    const agent = stack.agent
    const fault = await measureFault(t, stack, 'refused', () => agent.child.kill('SIGTERM'), agent.exited)
    await agent.exited
    await t.rejects(waitForPort(stack.agentPort, 200), 'the port refuses connections')
    // Still refused, a while later: HAProxy's checks keep failing, requests keep not waiting.
    const later: Timed[] = []
    for (let i = 0; i < 20; i++) later.push(await timedGet(stack.fePort, `/refused-later/${i}`))
    t.ok(later.every((r) => r.status === 200 && r.ms < TIMEOUT_PROCESSING_MS), 'requests answered while nothing listens, none waiting')
    await stack.restartAgent()
    const recoveredAt = performance.now() // the agent listens again
    await expectResumed(t, stack, 'refused', recoveredAt, fault, { 'a while later': later })
  })
}
