// Summaries of repeated runs and the tables the benchmarks print: the median
// (of numbers, and of every numeric field of a result record at once), the
// run-to-run spread, number formatting, fixed-width tables.

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** (max - min) / median, percent. */
export function spread(xs: readonly number[]): number {
  return ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100
}

/** How the runs' values of a field become one: `base` takes the base run's as it is. */
export type Combine = 'median' | 'sum' | 'max' | 'base'

/**
 * One record from several runs' records of the same shape: every numeric
 * field is the median over the runs (or their sum or max, or the base run's,
 * for the fields named in `rules` by their dotted path; a rule on an object
 * holds for all below it); objects are combined field by field; anything
 * else (strings, arrays, null) comes from `base` (default: the first run).
 */
export function medianRecord<T extends object>(runs: readonly T[], rules: Record<string, Combine> = {}, base: T = runs[0]!): T {
  const combine = (values: unknown[], from: unknown, path: string, rule: Combine): unknown => {
    const r = rules[path] ?? rule
    if (r === 'base') return from
    if (values.every((v) => typeof v === 'number')) {
      const xs = values as number[]
      return r === 'sum' ? xs.reduce((a, b) => a + b, 0) : r === 'max' ? Math.max(...xs) : median(xs)
    }
    if (from !== null && typeof from === 'object' && !Array.isArray(from) && values.every((v) => v !== null && typeof v === 'object')) {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(from)) {
        out[k] = combine(values.map((x) => (x as Record<string, unknown>)[k]), v, path === '' ? k : `${path}.${k}`, r)
      }
      return out
    }
    return from
  }
  return combine(runs as unknown[], base, '', 'median') as T
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a'

/** A column: heading, width, and the cell of a row. */
export type Column<R> = readonly [string, number, (r: R) => string]

/** One line of a table: the headings when `r` is null, else the row's cells, right-aligned to their columns. */
export function tableLine<R>(cols: readonly Column<R>[], label: string, r: R | null, labelWidth = 5): string {
  const cells = cols.map((c) => (r === null ? c[0] : c[2](r)).padStart(c[1]))
  return [label.padEnd(labelWidth), ...cells].join('  ')
}

/** A heading line and one line per labelled row. */
export function table<R>(cols: readonly Column<R>[], rows: ReadonlyArray<readonly [string, R]>): string[] {
  const w = Math.max(5, ...rows.map(([l]) => l.length))
  return [tableLine(cols, 'run', null, w), ...rows.map(([label, r]) => tableLine(cols, label, r, w))]
}
