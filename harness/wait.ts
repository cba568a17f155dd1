// Bounded waiting, for tests and benchmarks alike: poll a condition until it
// holds or time runs out, bound a promise, pace a loop. Nothing here waits
// without a bound; a fixed sleep is for pacing (a request rate, a sampling
// interval), never to let something happen.

/** Polls `cond` every `every` ms until it holds (true) or `ms` have passed (false). */
export async function eventually(cond: () => boolean, ms = 2000, every = 10): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) return false
    await sleep(every)
  }
  return true
}

/** Like `eventually`, for an asynchronous condition; throws `what` after `ms`. */
export async function waitUntil(cond: () => Promise<boolean> | boolean, ms: number, what: string, every = 50): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(every)
  }
}

/** `p`, or a rejection naming `what` once `ms` have passed. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Waits `ms`, or less when `early` settles first (a run cut short by its connections dying). */
export function sleep(ms: number, early?: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const slept = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  const settled = early === undefined ? slept : Promise.race([slept, early.then(() => {}, () => {})])
  return settled.then(() => clearTimeout(timer))
}
