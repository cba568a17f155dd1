// Time values as spoa-opentracing accepts them: a number with an optional
// unit, us, ms, s, m, h or d; a bare number is milliseconds.

const UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds, or null if `s` is not a time. */
export function parseDuration(s: string | number): number | null {
  if (typeof s === 'number') return Number.isFinite(s) && s >= 0 ? s : null
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)?\s*$/.exec(s)
  if (!m) return null
  return Number(m[1]) * UNITS[m[2] ?? 'ms']!
}

export const DURATION_HELP = 'a time: a number with an optional unit us, ms, s, m, h or d (ms by default)'
