// Annotated byte literals for golden vectors: hex pairs, "quoted ASCII" and
// `# comments`, so a vector reads like the annotated dumps of docs/PROTOCOL.md.
//
//   bytes`00 00 00 12  67  00 00 00 01  01 01   # len 18, ACK, FIN, sid 1, fid 1
//          05 "score"  02 4b                    # name, INT32 75`

export function bytes(strings: TemplateStringsArray, ...values: unknown[]): Buffer {
  const src = String.raw({ raw: strings }, ...values)
  const out: number[] = []
  for (const line of src.split('\n')) {
    let rest = line.replace(/#.*$/, '')
    while ((rest = rest.trimStart()) !== '') {
      if (rest.startsWith('"')) {
        const close = rest.indexOf('"', 1)
        if (close < 0) throw new Error(`unterminated string in: ${line}`)
        for (const ch of Buffer.from(rest.slice(1, close), 'latin1')) out.push(ch)
        rest = rest.slice(close + 1)
      } else {
        const m = /^([0-9a-fA-F]{2})(?=\s|$|")/.exec(rest)
        if (!m) throw new Error(`bad token at "${rest.slice(0, 12)}" in: ${line}`)
        out.push(parseInt(m[1]!, 16))
        rest = rest.slice(2)
      }
    }
  }
  return Buffer.from(out)
}

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
