// `npm run bench -- <command> [options]`: the entry point of the benchmarks.
// `npm run bench -- <command> --help` lists a command's options.

import { command as bare } from './bare-agent.js'
import { runCommands } from './cli.js'
import { command as record } from './compact-record.js'
import { command as scale } from './scale.js'
import { command as wrk } from './haproxy-wrk.js'
import { command as soak } from './soak.js'
import { command as loadgen } from './spop-loadgen.js'
import { command as tracing } from './tracing-agent.js'

const EPILOGUE = `examples:
  npm run bench -- wrk --ab none,spoe --rounds 3 --duration 15
  npm run bench -- tracing --runs 3
  npm run bench -- soak --minutes 10
  npm run bench -- soak --outage 60
  npm run bench -- scale`

runCommands(process.argv.slice(2), [bare, loadgen, tracing, wrk, soak, record, scale], EPILOGUE).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  },
)
