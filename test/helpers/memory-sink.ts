// A SpanSink that keeps what it receives: the tracing tests assert on it.

import type { FinishedSpan, SpanSink } from '../../src/tracing/types.js'

export class MemorySink implements SpanSink {
  readonly trees: FinishedSpan[][] = []

  push(spans: FinishedSpan[]): void {
    this.trees.push(spans)
  }

  get spans(): FinishedSpan[] {
    return this.trees.flat()
  }

  byName(name: string): FinishedSpan {
    const s = this.spans.find((x) => x.name === name)
    if (!s) throw new Error(`no span named ${name}; have ${this.spans.map((x) => x.name).join(', ')}`)
    return s
  }
}
