// The NotifyHandler that turns SPOE messages into span trees. Synchronous:
// it updates in-memory trees and returns at once, so the ACK never waits for
// anything; completed trees leave through the SpanSink.

import type { NotifyHandler } from '../agent/index.js'
import type { Action } from '../spop/index.js'
import type { Clock } from './clock.js'
import { GrammarInterpreter } from './grammar.js'
import type { TraceStore } from './trace-store.js'

const NO_ACTIONS: Action[] = []

export function createTracingHandler(store: TraceStore, clock: Clock): NotifyHandler {
  const interpreter = new GrammarInterpreter(store)
  // Most NOTIFYs inject nothing: actions collect in a reused scratch list and
  // only a NOTIFY that has some gets a list of its own.
  const scratch: Action[] = []
  return (messages, ctx) => {
    const now = clock.nowUs()
    scratch.length = 0
    for (let i = 0; i < messages.length; i++) interpreter.apply(ctx.engineId, messages[i]!, now, scratch)
    return scratch.length === 0 ? NO_ACTIONS : scratch.splice(0)
  }
}
