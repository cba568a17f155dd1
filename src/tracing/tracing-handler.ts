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
// A full batch (maxPending) is applied right after the read that filled it,
// once its ACKs are written; any batch in slices of a quarter millisecond,
// one per turn of the event loop, so that reads and ACKs go in between.
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
  /**
   * Applies one NOTIFY's messages now, after any waiting, as received at
   * `nowUs`, and returns its ACK's actions (the tracing thread, which gets
   * NOTIFYs the main thread already answered, with their arrival times).
   */
  applyNow(engineId: string | null, messages: Message[], nowUs: number): Action[]
}

interface Waiting {
  engineId: string | null
  messages: Message[]
  nowUs: number
  size: number
}

/**
 * Waiting NOTIFYs are applied in slices of this much time at most, each in
 * its own turn of the event loop (setImmediate): the socket reads that came
 * meanwhile, and their ACKs, go between two slices instead of waiting for a
 * whole batch. A slice still applies dozens of NOTIFYs, which keeps what the
 * batches save.
 */
const SLICE_MS = 0.25
/** A read that brings this many times maxPending waiting NOTIFYs applies them at once (memory before latency). */
const HARD_LIMIT_FACTOR = 4

/** Without `batch`, every NOTIFY is applied before its ACK (tests, and the grammar's own semantics). */
export function createTracingHandler(store: TraceStore, clock: Clock, batch?: BatchOptions): TracingHandler {
  const interpreter = new GrammarInterpreter(store)
  // Most NOTIFYs inject nothing: actions collect in a reused scratch list and
  // only a NOTIFY that has some gets a list of its own.
  const scratch: Action[] = []
  /** Waiting NOTIFYs are waiting[head..]; the ones before head were applied. */
  let waiting: Waiting[] = []
  let head = 0
  let waitingBytes = 0
  let timer: NodeJS.Timeout | null = null
  let immediate: NodeJS.Immediate | null = null

  const apply = (engineId: string | null, messages: Message[], nowUs: number, out: Action[]): void => {
    for (let i = 0; i < messages.length; i++) interpreter.apply(engineId, messages[i]!, nowUs, out)
  }

  /** Applies the next waiting NOTIFY. Its slot is let go first: one that throws is neither applied twice nor stops the ones after it. */
  const applyNext = (): void => {
    const w = waiting[head]!
    waiting[head++] = undefined as unknown as Waiting
    waitingBytes -= w.size
    try {
      apply(w.engineId, w.messages, w.nowUs, scratch)
    } catch (err) {
      batch?.onError(err)
    }
    scratch.length = 0
  }

  const settle = (): void => {
    if (head < waiting.length) {
      // A queue that never quite empties (the agent just keeps up) must not keep its applied entries.
      if (head >= 1024) {
        waiting = waiting.slice(head)
        head = 0
      }
      return
    }
    waiting = []
    head = 0
    waitingBytes = 0
    if (timer !== null) clearTimeout(timer)
    timer = null
    if (immediate !== null) clearImmediate(immediate)
    immediate = null
  }

  const drain = (): void => {
    while (head < waiting.length) applyNext()
    settle()
  }

  /** One slice, then the rest in the loop's next turn. */
  const step = (): void => {
    immediate = null
    if (timer !== null) clearTimeout(timer)
    timer = null
    const until = performance.now() + SLICE_MS
    do applyNext()
    while (head < waiting.length && performance.now() < until)
    settle()
    if (head < waiting.length) immediate = setImmediate(step)
  }

  const handle = (messages: Message[], ctx: NotifyContext): Action[] => {
    const nowUs = clock.nowUs()
    if (batch !== undefined && !asksForContext(messages)) {
      waiting.push({ engineId: ctx.engineId, messages, nowUs, size: ctx.size })
      waitingBytes += ctx.size
      const n = waiting.length - head
      if (n >= batch.maxPending * HARD_LIMIT_FACTOR || waitingBytes >= batch.maxPendingBytes) drain()
      // A full batch: right after this read's ACKs are written, not before them.
      else if (n >= batch.maxPending) immediate ??= setImmediate(step)
      else if (immediate === null) timer ??= setTimeout(step, batch.delayMs).unref()
      return NO_ACTIONS
    }
    return applyNow(ctx.engineId, messages, nowUs)
  }

  const applyNow = (engineId: string | null, messages: Message[], nowUs: number): Action[] => {
    if (head < waiting.length) drain()
    scratch.length = 0
    apply(engineId, messages, nowUs, scratch)
    if (scratch.length === 0) return NO_ACTIONS
    // Most important first (a stable sort): an ACK over max-frame-size loses its tail.
    return scratch.splice(0).sort((a, b) => injectRank(a.name) - injectRank(b.name))
  }

  return {
    handle,
    drain,
    applyNow,
    get pending() {
      return waiting.length - head
    },
  }
}

/** Whether any message has an inject= argument: only those put actions in the ACK. */
export function asksForContext(messages: Message[]): boolean {
  for (let i = 0; i < messages.length; i++) {
    const args = messages[i]!.args
    for (let j = 1; j < args.length; j++) if (args[j]!.name === 'inject') return true
  }
  return false
}
