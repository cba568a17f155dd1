// A bad configuration value: names the option (flag, variable or file key)
// and what it accepts, so the daemon can refuse to start with one clear line.
// Several problems found in one pass travel as one ConfigError whose
// `problems` lists them, one line each.

export class ConfigError extends Error {
  /** '' for a usage slip (an unknown option, a missing value): the message says it all. */
  readonly option: string
  /** Every problem this error stands for: itself, or those it combines. */
  readonly problems: readonly ConfigError[]

  constructor(option: string, message: string, problems?: readonly ConfigError[]) {
    super(problems ? problems.map((p) => p.message).join('\n') : option === '' ? message : `${option}: ${message}`)
    this.name = 'ConfigError'
    this.option = option
    this.problems = problems ?? [this]
  }

  /** One error for a list of problems (the problem itself when there is one). */
  static of(problems: readonly ConfigError[]): ConfigError {
    const all = problems.flatMap((p) => p.problems)
    if (all.length === 1) return all[0]!
    return new ConfigError(all[0]?.option ?? '', '', all)
  }
}

/**
 * Runs steps that may each throw a ConfigError and keeps going, so one pass
 * reports every problem; any other error is a bug and is rethrown.
 */
export class ProblemList {
  readonly problems: ConfigError[] = []

  /** The step's result, or undefined if it failed (its problem is recorded). */
  attempt<T>(step: () => T): T | undefined {
    try {
      return step()
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      this.problems.push(...err.problems)
      return undefined
    }
  }

  get empty(): boolean {
    return this.problems.length === 0
  }

  /** Throws every problem recorded so far as one ConfigError. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw ConfigError.of(this.problems)
  }
}
