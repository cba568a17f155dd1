// IPv4/IPv6 text <-> network-order bytes, for the IPV4/IPV6 typed-data
// values. Text follows glibc's inet_ntop (what HAProxy itself prints):
// lowercase hex, the longest run of two or more zero groups as "::", and the
// IPv4 tail for IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible addresses.

export function formatIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
}

export function formatIpv6(b: Uint8Array): string {
  const words: number[] = []
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!)
  // Longest run of zero words (first one on ties), only if 2 or more long.
  let bestBase = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLen) {
      bestBase = i
      bestLen = j - i
    }
    i = j
  }
  if (bestLen < 2) bestBase = -1
  let out = ''
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':'
      continue
    }
    if (i !== 0) out += ':'
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += formatIpv4(b.subarray(12, 16))
      break
    }
    out += words[i]!.toString(16)
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':'
  return out
}

/** Parses dotted-quad IPv4 text; returns null if it is not one. */
export function parseIpv4(s: string): Buffer | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  const out = Buffer.alloc(4)
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!
    if (!/^\d{1,3}$/.test(p)) return null
    const n = Number(p)
    if (n > 255) return null
    out[i] = n
  }
  return out
}

/** Parses IPv6 text (with "::" and an optional dotted IPv4 tail); returns null if it is not one. */
export function parseIpv6(s: string): Buffer | null {
  const halves = s.split('::')
  if (halves.length > 2) return null
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return []
    const words: number[] = []
    const groups = part.split(':')
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g)
        if (!v4) return null
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null
        words.push(parseInt(g, 16))
      }
    }
    return words
  }
  const head = parseGroups(halves[0]!)
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : []
  if (!head || !tail) return null
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null
  const words = [...head, ...new Array<number>(missing).fill(0), ...tail]
  const out = Buffer.alloc(16)
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  return out
}
