// schedGroupProblem: when SCHED_IDLE cannot keep the agent out of HAProxy's
// way because the kernel shares the CPU between sessions first (autogroups).

import t from 'tap'
import { schedGroupProblem } from '../../src/daemon/cpu-sched.js'

const linux = process.platform !== 'linux' ? 'autogroups are Linux only' : false

/** A /proc with these files; any other path is unreadable. */
const proc = (files: Record<string, string>) => (path: string): string => {
  const key = path.replace(`/proc/${process.ppid}/`, '/proc/PARENT/')
  if (!(key in files)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
  return files[key]!
}

t.test('a session of its own with autogroups on: the problem, said once with what to do', { skip: linux }, async (t) => {
  const read = proc({ '/proc/sys/kernel/sched_autogroup_enabled': '1\n', '/proc/self/autogroup': '/autogroup-655 nice 0\n', '/proc/PARENT/autogroup': '/autogroup-503 nice 0\n' })
  const p = schedGroupProblem('tracing-idle', read)
  t.match(p, /^--cpu-sched tracing-idle: this agent runs in a scheduling group of its own \(\/autogroup-655;/)
  t.match(p, /launch it from HAProxy \(a program section\) or in its session, or set kernel\.sched_autogroup_enabled=0$/)
  t.match(schedGroupProblem('idle', read), /^--cpu-sched idle: /, 'idle too')
  // The parent in the root group (its file is empty): still another group.
  t.match(schedGroupProblem('idle', proc({ '/proc/sys/kernel/sched_autogroup_enabled': '1', '/proc/self/autogroup': '/autogroup-7 nice 0', '/proc/PARENT/autogroup': '' })), /autogroup-7/)
})

t.test('no problem: the parent\'s group, autogroups off, the normal policy, or /proc unreadable', { skip: linux }, async (t) => {
  const same = proc({ '/proc/sys/kernel/sched_autogroup_enabled': '1', '/proc/self/autogroup': '/autogroup-503 nice 0', '/proc/PARENT/autogroup': '/autogroup-503 nice 0' })
  t.equal(schedGroupProblem('tracing-idle', same), null, 'launched from HAProxy or its session')
  const off = proc({ '/proc/sys/kernel/sched_autogroup_enabled': '0', '/proc/self/autogroup': '/autogroup-655 nice 0', '/proc/PARENT/autogroup': '/autogroup-503 nice 0' })
  t.equal(schedGroupProblem('tracing-idle', off), null, 'autogroups off')
  t.equal(schedGroupProblem('normal', () => '1'), null, 'the normal policy has nothing to lose')
  t.equal(schedGroupProblem('idle', proc({})), null, 'nothing readable: nothing known')
  const real = schedGroupProblem('idle')
  t.ok(real === null || real.startsWith('--cpu-sched idle: '), 'the real /proc: read without throwing')
})
