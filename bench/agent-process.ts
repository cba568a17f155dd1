// The bare agent as a child process, for bench/bare-agent.ts: AgentServer with
// a no-op handler and a silent logger, so what is measured is the SPOP layer
// alone. Runs in its own process so its CPU time (process.cpuUsage) is its
// own and it gets a core of its own, as a real agent would.
//
// Protocol with the parent, one JSON object per stdout line:
//   {"type":"listening","port":N}  once, when it accepts connections;
//   {"type":"usage",...}           for every line read on stdin, and on SIGUSR2.
// SIGTERM or SIGINT ends it with exit code 0, which lets `node --cpu-prof`
// write its profile; so does stdin closing with --exit-with-stdin (the parent
// died: no orphan keeps the port and a core busy).
//
// Usage: node dist/bench/agent-process.js [--host 127.0.0.1] [--port 0] [--unix PATH] [--exit-with-stdin]

import { pino } from 'pino'
import { AgentServer, type ListenAddress } from '../src/agent/index.js'
import { bool, num, parseChildArgs, str } from './cli.js'
import { print } from './json-line-child.js'

export interface AgentUsage {
  type: 'usage'
  /** CPU time of the whole process (all threads), microseconds. */
  userUs: number
  systemUs: number
  rssBytes: number
  notifyReceived: number
  acksSent: number
  connectionsOpen: number
  protocolErrors: number
}

const flags = parseChildArgs(process.argv.slice(2), {
  host: { type: 'string', default: '127.0.0.1', describe: 'address to listen on' },
  port: { type: 'number', default: 0, describe: 'port (0: any free one)' },
  unix: { type: 'string', describe: 'unix socket path instead of TCP' },
  'exit-with-stdin': { type: 'boolean', describe: 'exit when stdin closes' },
})
const unix = str(flags, 'unix')
const listen: ListenAddress = unix ? { path: unix } : { host: str(flags, 'host')!, port: num(flags, 'port') }

const server = new AgentServer({
  handler: () => [],
  logger: pino({ level: 'silent' }),
  listen,
  capabilities: ['pipelining'],
})

function report(): void {
  const cpu = process.cpuUsage()
  const s = server.stats
  let protocolErrors = 0
  for (const n of s.protocolErrors.values()) protocolErrors += n
  const usage: AgentUsage = {
    type: 'usage',
    userUs: cpu.user,
    systemUs: cpu.system,
    rssBytes: process.memoryUsage.rss(),
    notifyReceived: s.notifyReceived,
    acksSent: s.acksSent,
    connectionsOpen: s.connectionsOpen,
    protocolErrors,
  }
  print(usage)
}

function exit(): void {
  server.destroy()
  process.exit(0)
}

const bound = await server.listen()
print({ type: 'listening', ...bound })

process.on('SIGUSR2', report)
process.on('SIGTERM', exit)
process.on('SIGINT', exit)
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk: string) => {
  for (const ch of chunk) if (ch === '\n') report()
})
if (bool(flags, 'exit-with-stdin')) process.stdin.on('end', exit)
