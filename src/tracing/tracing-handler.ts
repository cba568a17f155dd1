// The NotifyHandler that turns SPOE messages into span trees. It never waits
// on anything: trees live in memory and completed ones leave through the
// SpanSink.
//
// Answer first, trace in batches (the daemon's mode): a NOTIFY whose messages
// ask for no context (no inject= argument) gets its empty ACK at once and its
// messages wait, with the time they arrived, to be applied together every few
// milliseconds. Why: at a few thousand NOTIFYs a second the agent wakes for
// each one with cold caches, and the span work costs more one NOTIFY at a
// time than in a run of them (measured in docs/BENCHMARKS.md, "Answer first,
// trace in batches"); HAProxy also gets its ACK before that work instead of
// after it. A NOTIFY with inject= is answered from the span state: it first
// applies everything waiting before it, in arrival order, then itself, so a
// request's events are applied in the order they came whichever way they
// were answered.
//
// The batch timer is unref'd: waiting NOTIFYs never keep the process alive
// on their own. Shutdown calls drain() before it ends the open trees, so
// nothing answered is lost to an exit.

import type { NotifyContext } from '../agent/index.js'
import type { Action, Message } from '../spop/index.js'
import type { Clock } from './clock.js'
import { GrammarInterpreter } from './grammar.js'
import { injectRank } from './propagation.js'
import type { TraceStore } from './trace-store.js'

const NO_ACTIONS: Action[] = []

export interface BatchOptions {
  /** How long the first waiting NOTIFY may wait. */
  delayMs: number
  /** This many waiting NOTIFYs are applied at once, whatever the delay. */
  maxPending: number
  /** So are waiting NOTIFYs from this many frame bytes (fragmented ones can be large). */
  maxPendingBytes: number
  /** A batched NOTIFY whose application threw (a bug): its ACK is long gone, so it can only be reported. */
  onError: (err: unknown) => void
}

export interface TracingHandler {
  /** A NotifyHandler that always answers synchronously. */
  readonly handle: (messages: Message[], ctx: NotifyContext) => Action[]
  /** Applies every waiting NOTIFY now (shutdown: before the open trees are ended). */
  drain(): void
  /** NOTIFY frames waiting to be applied. */
  readonly pending: number
}

interface Waiting {
  engineId: string | null
  messages: Message[]
  nowUs: number
}

/** Without `batch`, every NOTIFY is applied before its ACK (tests, and the grammar's own semantics). */
export function createTracingHandler(store: TraceStore, clock: Clock, batch?: BatchOptions): TracingHandler {
  const interpreter = new GrammarInterpreter(store)
  // Most NOTIFYs inject nothing: actions collect in a reused scratch list and
  // only a NOTIFY that has some gets a list of its own.
  const scratch: Action[] = []
  let waiting: Waiting[] = []
  let waitingBytes = 0
  let timer: NodeJS.Timeout | null = null

  const apply = (engineId: string | null, messages: Message[], nowUs: number, out: Action[]): void => {
    for (let i = 0; i < messages.length; i++) interpreter.apply(engineId, messages[i]!, nowUs, out)
  }

  const drain = (): void => {
    if (timer !== null) clearTimeout(timer)
    timer = null
    // Taken first: a NOTIFY that throws must neither be applied twice nor stop the ones after it.
    const list = waiting
    waiting = []
    waitingBytes = 0
    for (let i = 0; i < list.length; i++) {
      const w = list[i]!
      try {
        apply(w.engineId, w.messages, w.nowUs, scratch)
      } catch (err) {
        batch?.onError(err)
      }
    }
    scratch.length = 0
  }

  const handle = (messages: Message[], ctx: NotifyContext): Action[] => {
    const nowUs = clock.nowUs()
    if (batch !== undefined && !asksForContext(messages)) {
      waiting.push({ engineId: ctx.engineId, messages, nowUs })
      waitingBytes += ctx.size
      if (waiting.length >= batch.maxPending || waitingBytes >= batch.maxPendingBytes) drain()
      else timer ??= setTimeout(drain, batch.delayMs).unref()
      return NO_ACTIONS
    }
    if (waiting.length > 0) drain()
    scratch.length = 0
    apply(ctx.engineId, messages, nowUs, scratch)
    if (scratch.length === 0) return NO_ACTIONS
    // Most important first (a stable sort): an ACK over max-frame-size loses its tail.
    return scratch.splice(0).sort((a, b) => injectRank(a.name) - injectRank(b.name))
  }

  return {
    handle,
    drain,
    get pending() {
      return waiting.length
    },
  }
}

/** Whether any message has an inject= argument: only those put actions in the ACK. */
function asksForContext(messages: Message[]): boolean {
  for (let i = 0; i < messages.length; i++) {
    const args = messages[i]!.args
    for (let j = 1; j < args.length; j++) if (args[j]!.name === 'inject') return true
  }
  return false
}
