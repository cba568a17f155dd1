// A tiny flag parser for the bench commands: `--name value`, `--name=value`
// and bare boolean `--flag`, checked against a spec so a typo fails loudly
// instead of silently benchmarking the defaults. Hand-rolled because the bench
// scripts should start fast and stay readable on their own.

export type FlagKind = 'number' | 'string' | 'boolean'
export type FlagSpec = Record<string, { kind: FlagKind; help: string }>
export type FlagValues = Record<string, string | number | boolean>

export class UsageError extends Error {}

export function parseFlags(argv: readonly string[], spec: FlagSpec): FlagValues {
  const out: FlagValues = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument: ${arg}`)
    const eq = arg.indexOf('=')
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
    const def = spec[name]
    if (!def) throw new UsageError(`unknown option --${name}`)
    if (def.kind === 'boolean') {
      out[name] = eq > 0 ? arg.slice(eq + 1) !== 'false' : true
      continue
    }
    let raw: string | undefined
    if (eq > 0) raw = arg.slice(eq + 1)
    else raw = argv[++i]
    if (raw === undefined) throw new UsageError(`--${name} needs a value`)
    if (def.kind === 'number') {
      const n = Number(raw)
      if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name}: not a number: ${raw}`)
      out[name] = n
    } else {
      out[name] = raw
    }
  }
  return out
}

export function usageLines(spec: FlagSpec): string[] {
  return Object.entries(spec).map(([name, d]) => {
    const flag = d.kind === 'boolean' ? `--${name}` : `--${name} <${d.kind === 'number' ? 'n' : 'value'}>`
    return `  ${flag.padEnd(26)} ${d.help}`
  })
}

/** A number flag, with a default and a lower bound (every bench knob is a count or a duration). */
export function num(v: FlagValues, name: string, dflt: number, min = 0): number {
  const x = v[name]
  const n = typeof x === 'number' ? x : dflt
  if (n < min) throw new UsageError(`--${name} must be at least ${min}`)
  return n
}

export function str(v: FlagValues, name: string): string | undefined {
  const x = v[name]
  return typeof x === 'string' ? x : undefined
}

export function bool(v: FlagValues, name: string): boolean {
  return v[name] === true
}

/** `usage: npm run bench -- <name> [options]` and the option lines. */
export function commandUsage(name: string, spec: FlagSpec): string {
  return `usage: npm run bench -- ${name} [options]\n${usageLines(spec).join('\n')}`
}

/**
 * The command-line front of a bench command: `--help` prints `help`; a bad
 * flag or value (a UsageError from parsing or from `build`) prints the
 * problem and `help`. Either way the command returns `exit` at once;
 * otherwise `value` is what `build` made of the flags.
 */
export function parseCommand<T>(
  name: string,
  argv: readonly string[],
  spec: FlagSpec,
  help: string,
  build: (v: FlagValues) => T,
): { value: T } | { exit: number } {
  if (argv.includes('--help')) {
    console.log(help)
    return { exit: 0 }
  }
  try {
    return { value: build(parseFlags(argv, spec)) }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`${name}: ${err.message}\n\n${help}`)
    return { exit: 2 }
  }
}
