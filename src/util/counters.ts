// Labelled counters are plain Maps; this is the one way to add to one.

export function bump<K>(m: Map<K, number>, key: K, by = 1): void {
  m.set(key, (m.get(key) ?? 0) + by)
}
