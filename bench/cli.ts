// The benchmarks' command line, on yargs like the agent's: each command is
// its name, its options (yargs option definitions, defaults shown in
// --help), help text, and what it runs. Unknown options and values that are
// not numbers fail loudly instead of silently benchmarking the defaults; the
// checks between options throw UsageError, which prints the command's help.

import yargs, { type Argv, type Options } from 'yargs'
import { CPU_SCHEDS, type CpuSched } from '../src/daemon/cpu-sched.js'

export class UsageError extends Error {}

export type OptionSpec = Record<string, Options>
/** Parsed options: yargs' argv, read through num/str/bool. */
export type Args = Record<string, unknown>

export interface BenchCommand {
  name: string
  /** One line for the list of commands. */
  describe: string
  options: OptionSpec
  /** More help, after the options. */
  epilogue?: string
  examples?: ReadonlyArray<readonly [string, string]>
  /** The exit status: 0 when every check passed. */
  run(a: Args): Promise<number>
}

/** A number option at least `min` (every bench knob is a count or a duration). */
export function num(a: Args, name: string, min = 0): number {
  const x = a[name]
  if (typeof x !== 'number' || Number.isNaN(x)) throw new UsageError(`--${name}: not a number`)
  if (x < min) throw new UsageError(`--${name} must be at least ${min}`)
  return x
}

export function str(a: Args, name: string): string | undefined {
  const x = a[name]
  return typeof x === 'string' ? x : undefined
}

export function bool(a: Args, name: string): boolean {
  return a[name] === true
}

/** The agent's --cpu-sched as a bench passes it on: one of the agent's own values, normal when not given. */
export function cpuSched(a: Args): CpuSched {
  const v = str(a, 'cpu-sched')
  if (v === undefined) return 'normal'
  if ((CPU_SCHEDS as readonly string[]).includes(v)) return v as CpuSched
  throw new UsageError(`--cpu-sched: ${CPU_SCHEDS.join(', ')}, not ${v}`)
}

const width = (): number => Math.min(110, process.stdout.columns || 100)

/**
 * Runs the command named by argv[0] with the rest of argv; resolves with the
 * exit status (2 for a usage error, after the problem and the help).
 */
export async function runCommands(argv: readonly string[], commands: readonly BenchCommand[], epilogue: string): Promise<number> {
  let status = 0
  // --help prints and stops: no command runs, and what is missing is no error.
  const help = argv.includes('--help') || argv.includes('-h')
  let y: Argv = yargs([...argv])
    .scriptName('npm run bench --')
    .usage('$0 <command> [options]')
    .strict()
    .version(false)
    .help()
    .exitProcess(false)
    .wrap(width())
    .demandCommand(1, 'which benchmark? (a command)')
    .epilogue(epilogue)
    .fail((msg, err, parser) => {
      if (err && !(err instanceof UsageError)) throw err
      if (help) return
      console.error(`${msg ?? err?.message}\n`)
      parser.showHelp('error')
      status = 2
    })
  for (const c of commands) {
    let sub: Argv | null = null
    y = y.command(
      c.name,
      c.describe,
      (cy) => {
        sub = cy.options(c.options).epilogue(c.epilogue ?? '')
        for (const [cmd, what] of c.examples ?? []) sub = sub.example(cmd, what)
        return sub
      },
      async (a) => {
        try {
          status = await c.run(a as Args)
        } catch (err) {
          if (!(err instanceof UsageError)) throw err
          console.error(`${c.name}: ${err.message}\n`)
          sub?.showHelp('error')
          status = 2
        }
      },
    )
  }
  await y.parseAsync()
  return status
}

/** The options of a child process (its parent is the harness: any problem is a bug, thrown). */
export function parseChildArgs(argv: readonly string[], options: OptionSpec): Args {
  return yargs([...argv]).options(options).strict().version(false).help(false).exitProcess(false).fail((msg, err) => {
    throw err ?? new UsageError(msg)
  }).parseSync() as Args
}
