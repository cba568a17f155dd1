// Bounded waiting for tests: poll a condition until it holds or time runs out.

export async function eventually(cond: () => boolean, ms = 2000, every = 10): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, every))
  }
  return true
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
