// Whether HAProxy launched the agent, and when it is time to stop
// (src/daemon/haproxy-parent.ts): over a /proc built in a temporary
// directory (each case exactly), and once for real, under a fake HAProxy:
// a node binary started through a link named `haproxy`, which is all
// /proc/PID/stat shows of a program's name.

import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parentIsHaproxy, type ProcView, procStat, siblingHaproxyWorkers, watchHaproxyParent } from '../../src/daemon/haproxy-parent.js'

function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'spoa-parent-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** A /proc with one stat file per process: pid -> [comm, ppid]. */
function fakeProc(root: string, procs: Record<number, [string, number]>): void {
  for (const [pid, [comm, ppid]] of Object.entries(procs)) {
    mkdirSync(join(root, pid), { recursive: true })
    writeFileSync(join(root, pid, 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0\n`)
  }
}

/** Resolves with what `onGone` got, or with null after `ms`. */
function gone(ms: number): { reason: Promise<string | null>; onGone: (r: string) => void; calls: () => number } {
  let calls = 0
  let resolve!: (r: string | null) => void
  const reason = new Promise<string | null>((r) => (resolve = r))
  const timer = setTimeout(() => resolve(null), ms)
  return {
    reason,
    onGone: (r) => {
      calls++
      clearTimeout(timer)
      resolve(r)
    },
    calls: () => calls,
  }
}

t.test('/proc/PID/stat: the name ends at the last parenthesis', async (t) => {
  const root = tmp(t)
  fakeProc(root, { 10: ['haproxy', 1], 11: ['a) (b', 10], 12: ['haproxy) S 10 (', 1] })
  t.same(procStat(10, root), { comm: 'haproxy', ppid: 1 })
  t.same(procStat(11, root), { comm: 'a) (b', ppid: 10 }, 'blanks and parentheses in the name')
  t.same(procStat(12, root), { comm: 'haproxy) S 10 (', ppid: 1 }, 'a name made to look like a stat line fools nothing')
  t.equal(procStat(13, root), null, 'no such process')
  writeFileSync(join(root, '10', 'stat'), 'garbage')
  t.equal(procStat(10, root), null, 'an unreadable line')
})

t.test('parentIsHaproxy and siblingHaproxyWorkers over a fake /proc', async (t) => {
  const root = tmp(t)
  fakeProc(root, {
    1: ['systemd', 0],
    100: ['haproxy', 1], // the master that launched us
    200: ['haproxy', 100], // us: never counted, whatever our name
    201: ['haproxy', 100], // its workers
    202: ['haproxy', 100],
    203: ['node', 100], // another program of the master
    204: ['haproxy) S 100 (', 100], // not a worker, whatever its name suggests
    300: ['haproxy', 1], // another HAProxy: not ours
    301: ['haproxy', 300],
  })
  mkdirSync(join(root, 'self'))
  mkdirSync(join(root, '400')) // a process that exited while /proc was listed: no stat
  const under = (ppid: number): ProcView => ({ root, pid: 200, ppid: () => ppid })
  t.equal(parentIsHaproxy(under(100)), true)
  t.equal(parentIsHaproxy(under(1)), false, 'launched by something else')
  t.equal(parentIsHaproxy(under(999)), false, 'a parent /proc does not show')
  t.equal(siblingHaproxyWorkers(under(100)), 2)
  t.equal(siblingHaproxyWorkers(under(1)), 2, 'under init: the two HAProxy masters are its children')
  t.equal(siblingHaproxyWorkers({ root: join(root, 'missing'), pid: 200, ppid: () => 100 }), -1, 'no /proc: unknown')
})

t.test('watchHaproxyParent: a soft-stop ends when the last worker is gone', async (t) => {
  const root = tmp(t)
  fakeProc(root, { 100: ['haproxy', 1], 200: ['node', 100], 201: ['haproxy', 100] })
  const g = gone(10_000)
  const watch = watchHaproxyParent(g.onGone, 10, { root, pid: 200, ppid: () => 100 })
  t.teardown(() => watch.stop())
  watch.softStop()
  t.equal(g.calls(), 0, 'a worker is still there (a reload: the new one)')
  rmSync(join(root, '201'), { recursive: true })
  t.equal(await g.reason, 'HAProxy soft-stop: no HAProxy worker left')
  watch.softStop()
  t.equal(g.calls(), 1, 'said once')
})

t.test('watchHaproxyParent: the master gone (we were re-parented)', async (t) => {
  const root = tmp(t)
  fakeProc(root, { 100: ['haproxy', 1], 200: ['node', 100] })
  let ppid = 100
  const g = gone(10_000)
  const watch = watchHaproxyParent(g.onGone, 10, { root, pid: 200, ppid: () => ppid })
  t.teardown(() => watch.stop())
  ppid = 1
  t.equal(await g.reason, 'the HAProxy master that launched the agent is gone')
  t.equal(g.calls(), 1)
})

t.test('for real: a child of a process named haproxy, with a sibling worker', async (t) => {
  const mod = join(process.cwd(), 'dist', 'src', 'daemon', 'haproxy-parent.js')
  t.ok(existsSync(mod), 'built (npm run build)')
  if (!existsSync(mod)) return
  const dir = tmp(t)
  const haproxy = join(dir, 'haproxy')
  symlinkSync(process.execPath, haproxy)
  const probe = `import(${JSON.stringify(mod)}).then((m) => console.log(JSON.stringify([m.parentIsHaproxy(), m.siblingHaproxyWorkers()])))`
  // The fake master: starts a "worker" (also named haproxy) and the probe, prints what the probe says, stops the worker by PID.
  const master = `
    const { spawn, execFileSync } = require('node:child_process')
    const worker = spawn(${JSON.stringify(haproxy)}, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    try {
      process.stdout.write(execFileSync(process.execPath, ['-e', ${JSON.stringify(probe)}], { encoding: 'utf8', timeout: 20000 }))
    } finally {
      worker.kill('SIGKILL')
    }`
  const child = spawn(haproxy, ['-e', master], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 30_000)
    child.once('exit', (c) => {
      clearTimeout(timer)
      resolve(c)
    })
  })
  t.equal(code, 0, 'the fake master ran') || t.comment(err)
  t.same(JSON.parse(out.trim() || 'null'), [true, 1], 'the parent is HAProxy; one worker beside the probe (the probe itself not counted)')

  // The test runner itself is not launched by HAProxy.
  const { parentIsHaproxy: here } = (await import(mod)) as { parentIsHaproxy: () => boolean }
  t.equal(here(), false, 'under node')
})
