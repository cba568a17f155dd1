// Rate limit for log lines about bad input. A hostile or broken peer must not
// be able to turn the agent's log into its own firehose: each key (an error
// code, never a peer-controlled string) logs at most once per interval, and
// the next line that gets through says how many were suppressed.

export class LogLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Returns -1 if a line for `key` must be dropped now, otherwise the number
   * of lines suppressed for that key since the last one that was allowed.
   */
  allow(key: string): number {
    const t = this.now()
    const entry = this.last.get(key)
    if (entry === undefined) {
      this.last.set(key, { at: t, suppressed: 0 })
      return 0
    }
    if (t - entry.at < this.intervalMs) {
      entry.suppressed++
      return -1
    }
    const suppressed = entry.suppressed
    entry.at = t
    entry.suppressed = 0
    return suppressed
  }
}
