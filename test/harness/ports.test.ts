// Ports for tests and benchmarks: a start that finds its port taken is tried
// again with another one; anything else fails at once.

import { createServer } from 'node:net'
import t from 'tap'
import { freePort, isAddressInUse, onFreePort, waitForPort } from '../../harness/ports.js'

t.test('onFreePort tries another port when the bind says "address in use"', async (t) => {
  const tried: number[] = []
  const port = await onFreePort(async (p) => {
    tried.push(p)
    if (tried.length < 3) throw Object.assign(new Error(`listen EADDRINUSE: address already in use 127.0.0.1:${p}`), { code: 'EADDRINUSE' })
    return p
  })
  t.equal(tried.length, 3)
  t.equal(port, tried[2])
})

t.test('onFreePort gives up after its attempts, and at once on other errors', async (t) => {
  let n = 0
  const taken = async (): Promise<never> => {
    n++
    throw new Error('[ALERT] Starting frontend http-in: cannot bind socket (Address already in use) [127.0.0.1:1]')
  }
  await t.rejects(onFreePort(taken, 2), /Address already in use/)
  t.equal(n, 2)
  n = 0
  await t.rejects(
    onFreePort(async () => {
      n++
      throw new Error('bad configuration')
    }),
    /bad configuration/,
  )
  t.equal(n, 1)
  t.notOk(isAddressInUse(new Error('ECONNREFUSED')))
})

t.test('freePort and waitForPort', async (t) => {
  const port = await freePort()
  t.ok(port > 0)
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  await waitForPort((server.address() as { port: number }).port, 2000)
  await t.rejects(waitForPort(port, 5000, () => false, 'the server'), /the server exited before listening/)
})
