// `npm run bench -- <command> [options]`: the entry point of the benchmarks.
//   bare     the bare agent (no-op handler) in a child process, driven by the load generator
//   loadgen  the SPOP load generator alone, against an agent already running
//   tracing  the tracing daemon (9-span flow) exporting OTLP to a counting sink, under load
//   wrk      wrk through a real HAProxy with the SPOE filter, the agent exporting to a counting sink
//   soak     the tracing daemon at a steady rate for minutes: RSS, heap and open trees over time

import { main as bare } from './bare-agent.js'
import { main as loadgen } from './spop-loadgen.js'
import { main as tracing } from './tracing-agent.js'
import { main as wrk } from './haproxy-wrk.js'
import { main as soak } from './soak.js'

const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = { bare, loadgen, tracing, wrk, soak }

const USAGE = `usage: npm run bench -- <command> [options]

commands:
  bare [options]     the bare agent (no-op handler) in a child process under load;
                     --connections 8 --depth 20 --duration 10 --warmup 2 --args 10 --messages 1
                     --runs 3 --cpu-prof DIR --json
  loadgen [options]  the SPOP load generator alone against a running agent;
                     --target host:port|unix:/path, plus the load options above and --json
  tracing [options]  the tracing daemon in a child process replaying the 9-span flow, exporting
                     OTLP/HTTP to a counting sink in another; checks 20,000 req/s and 100 µs/req;
                     --workers 1 --protocol http/protobuf|http/json --exporter otlp|none
                     --batch 2048 --queue 32768 --delay 500 --concurrency 4
                     --connections 8 --depth 20 --duration 10 --warmup 2 --runs 3 --cpu-prof DIR --json
  wrk [options]      wrk through a real HAProxy (one thread, option httpclose) to an origin HAProxy,
                     with the SPOE filter and the agent exporting to a counting sink; modes none,
                     spoe (9 spans), compact; --ab none,spoe --rounds 3 --duration 15 --warmup 3
                     --connections 8 --threads 1 --agent 'command {port}' --workers 1 --cpu-prof DIR --json
  soak [options]     the tracing daemon under the 9-span flow at a steady rate (1% of requests
                     abandoned halfway, left to the reaper), sampled every 10 s; --minutes 10
                     --rate 2000 --connections 4 --abandon 1 --sample 10 --warmup 2 --json

\`npm run bench -- <command> --help\` lists the options of a command.`

const [command, ...rest] = process.argv.slice(2)
const run = command === undefined ? undefined : COMMANDS[command]
if (run === undefined) {
  const help = command === 'help' || command === '--help'
  if (command !== undefined && !help) console.error(`unknown command: ${command}\n`)
  console.error(USAGE)
  process.exit(help ? 0 : 2)
} else {
  run(rest).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`bench ${command}: ${err instanceof Error ? err.message : String(err)}`)
      process.exit(1)
    },
  )
}
