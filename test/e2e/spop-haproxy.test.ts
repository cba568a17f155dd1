// End to end with the real HAProxy (2.6 from Debian): a SPOE filter sends a
// message carrying every sample type HAProxy can encode, through real HTTP
// traffic; the agent records what it decoded and answers with set-var
// actions, which HAProxy echoes back as response headers. With and without
// pipelining, plus HAProxy's own SPOP health checks.

import t from 'tap'
import { AgentServer } from '../../src/agent/index.js'
import { type Action, type Message, setVar, tv, unsetVar, VarScope } from '../../src/spop/index.js'
import { haproxyVersion, startHaproxy } from '../../harness/haproxy.js'
import { requireHaproxy } from '../helpers/haproxy.js'
import { silentLogger } from '../helpers/logger.js'
import { startOrigin } from '../helpers/origin.js'
import { eventually } from '../../harness/wait.js'

const bin = requireHaproxy(t)

const actionsFor = (tag: string): Action[] => [
  setVar(VarScope.TXN, 'score', tv.int32(75)),
  setVar(VarScope.TXN, 'flag', tv.bool(true)),
  setVar(VarScope.TXN, 'ip', tv.ipv4('10.0.0.1')),
  setVar(VarScope.TXN, 'ip6', tv.ipv6('2001:db8::2')),
  setVar(VarScope.TXN, 'name', tv.string(`agent-${tag}`)),
  setVar(VarScope.TXN, 'neg', tv.int64(-5)),
  setVar(VarScope.TXN, 'big', tv.int64(2n ** 53n + 1n)),
  setVar(VarScope.TXN, 'bin', tv.binary(Buffer.from([0xde, 0xad, 0xbe, 0xef]))),
  setVar(VarScope.SESS, 'seen', tv.bool(true)),
  unsetVar(VarScope.TXN, 'gone'),
]

const expectedArgs = (tag: string, path: string) => [
  { name: 's', ...tv.string('hello') },
  { name: 'i', ...tv.int64(-42) },
  { name: 'big', ...tv.int64(2n ** 63n - 1n) },
  { name: 'v4', ...tv.ipv4('192.168.1.10') },
  { name: 'v6', ...tv.ipv6('2001:db8::1') },
  { name: 'b', ...tv.binary(Buffer.from([0x00, 0x01, 0xff])) },
  { name: 't', ...tv.bool(true) },
  { name: 'f', ...tv.bool(false) },
  { name: 'missing', ...tv.null() },
  { name: 'src', ...tv.ipv4('127.0.0.1') },
  { name: 'hdr', ...tv.string(tag) },
  { name: 'method', ...tv.string('GET') },
  { name: 'path', ...tv.string(path) },
]

for (const engine of ['e2e', 'e2e-nopipe']) {
  t.test(`real HAProxy, SPOE engine ${engine}`, { skip: bin === null }, async (t) => {
    t.comment(haproxyVersion(bin!))
    const received = new Map<string, Message[]>()
    const agent = new AgentServer({
      logger: silentLogger(),
      listen: { host: '127.0.0.1', port: 0 },
      capabilities: ['pipelining'],
      handler: (messages) => {
        const hdr = messages[0]?.args.find((a) => a.name === 'hdr')
        const tag = typeof hdr?.value === 'string' ? hdr.value : 'none'
        received.set(tag, messages)
        return actionsFor(tag)
      },
    })
    const addr = (await agent.listen()) as { port: number }
    t.teardown(() => agent.destroy())
    const origin = await startOrigin()
    t.teardown(() => origin.close())
    const haproxy = await startHaproxy({
      bin: bin!,
      config: 'haproxy/test/spop-types.cfg',
      bind: (p) => ({ FE_PORT: String(p) }),
      env: {
        ORIGIN_PORT: String(origin.port),
        AGENT_PORT: String(addr.port),
        SPOE_ENGINE: engine,
        SPOE_CONF: 'haproxy/test/spop-types-spoe.cfg',
      },
    })
    const fePort = haproxy.port
    t.teardown(() => haproxy.stop())

    const get = async (tag: string, path: string) => {
      const res = await fetch(`http://127.0.0.1:${fePort}${path}`, { headers: { 'x-test': tag } })
      await res.text()
      return res
    }

    // Sequential, then concurrent (pipelined NOTIFYs on the same connections when enabled).
    const tags: string[] = []
    for (let i = 0; i < 5; i++) {
      const tag = `seq-${i}`
      tags.push(tag)
      const res = await get(tag, `/seq/${i}?q=${i}`)
      t.equal(res.status, 200, `${tag}: 200`)
      const h = res.headers
      t.same(
        {
          score: h.get('x-spoe-score'),
          flag: h.get('x-spoe-flag'),
          ip: h.get('x-spoe-ip'),
          ip6: h.get('x-spoe-ip6'),
          name: h.get('x-spoe-name'),
          neg: h.get('x-spoe-neg'),
          big: h.get('x-spoe-big'),
          bin: h.get('x-spoe-bin'),
          sess: h.get('x-spoe-sess'),
          gone: h.get('x-spoe-gone'),
          err: h.get('x-spoe-err'),
        },
        {
          score: '75',
          flag: '1',
          ip: '10.0.0.1',
          ip6: '2001:db8::2',
          name: `agent-${tag}`,
          neg: '-5',
          big: String(2n ** 53n + 1n),
          bin: 'DEADBEEF',
          sess: '1',
          gone: '',
          err: '',
        },
        `${tag}: every set-var (and the unset-var) reached HAProxy`,
      )
    }
    const concurrent = Array.from({ length: 30 }, (_, i) => `par-${i}`)
    const results = await Promise.all(concurrent.map((tag, i) => get(tag, `/par/${i}`)))
    const lost: string[] = []
    for (const [i, res] of results.entries()) {
      const tag = concurrent[i]!
      if (engine === 'e2e-nopipe' && res.headers.get('x-spoe-err') === '1' && !received.has(tag)) {
        // HAProxy 2.6.12 in sync mode (no pipelining) can leave a queued message unsent until
        // `timeout processing` under a burst: upstream fixes 5e84f13a0 and bc9fb6462, newer than
        // Debian's 2.6.12. The agent never saw this NOTIFY, so there was nothing for it to answer.
        lost.push(tag)
        continue
      }
      t.equal(res.headers.get('x-spoe-name'), `agent-${tag}`, `${tag}: its own ACK's actions`)
      t.equal(res.headers.get('x-spoe-err'), '', `${tag}: no SPOE error`)
    }
    if (lost.length > 0) t.comment(`HAProxy never sent (its sync-mode queueing bug): ${lost.join(', ')}`)
    t.ok(lost.length <= 2, 'at most a rare HAProxy-side loss in sync mode')
    tags.push(...concurrent.filter((tag) => !lost.includes(tag)))

    for (const tag of tags) {
      const messages = received.get(tag)
      const path = `/${tag.replace('-', '/')}`
      t.same(messages, [{ name: 'all-types', args: expectedArgs(tag, path) }], `${tag}: decoded arguments`)
    }

    const live = [...agent.connections].filter((c) => c.negotiated && !c.negotiated.healthcheck)
    t.ok(live.length > 0, 'HAProxy keeps SPOP connections open')
    const caps = engine === 'e2e' ? ['pipelining'] : []
    for (const c of live) t.same(c.negotiated!.capabilities, caps, `negotiated capabilities ${JSON.stringify(caps)}`)
    t.equal(live[0]!.negotiated!.maxFrameSize, 16380, "HAProxy's max-frame-size")
    t.ok(await eventually(() => agent.stats.healthchecks > 0, 5000), 'option spop-check health checks answered')
    t.equal(agent.stats.protocolErrors.size, 0, 'no protocol error on either side')
    t.equal(agent.stats.handlerErrors, 0)
    t.notMatch(haproxy.output(), /SPOE.*(error|failed)/i, 'HAProxy logged no SPOE error')
  })
}
