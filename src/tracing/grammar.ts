// The spoa-opentracing message grammar, interpreted against the trace store.
// Each spoe-message is one ordered list of arguments:
//
//   id=<unique-id>                                    first, always: which request
//   span=<name> [child-of=<name> | follows-from=<name>]   start (or select) a span
//   tag=<key> <value>...   baggage=<key> <value>...   log=<name> <value>...
//   finish=<name> | finish=*
//   extract=<header> <value>...   a trace context header of the request (traceparent, b3, ...)
//   inject=<name>                  answer with set-var actions carrying that span's context
//   time=<epoch us>                HAProxy's date(0,us) of the event, instead of the receive time
//
// An argument with an empty name continues the previous one (that is how
// `tag=str("http.version") str("HTTP/") req.ver` joins two samples). Names
// repeat freely. Finishes apply at the end of the message, after every span
// it starts exists, as in the C agent, so all of a message's events share one
// timestamp. Mistakes cost the argument, not the message: each is counted.

import {
  type Action,
  DataType,
  internValuesOf,
  type Message,
  type NamedValue,
  setVar,
  tv,
  type TypedValue,
  VarScope,
} from '../spop/index.js'
import { type Carrier, type SpanContext, extract, inject } from './propagation.js'
import type { Upstream } from './trace-store.js'
import { applyCompactRecord, readCompact } from './compact.js'
import type { OpenSpan, Trace } from './trace.js'
import { bump } from '../util/counters.js'
import type { TraceStore } from './trace-store.js'
import { valuesToAttribute, valuesToString, valueToString } from './values.js'

// The values of these arguments are names (of spans, tags, baggage items,
// events), the same on every request: the decoder interns them like
// argument names instead of decoding a new string each time.
internValuesOf(['span', 'child-of', 'follows-from', 'tag', 'baggage', 'log', 'finish', 'inject'])

/** What the argument being read belongs to, until its last continuation. */
const Item = {
  NONE: 0,
  TAG: 1,
  BAGGAGE: 2,
  LOG: 3,
  FINISH: 4,
  /** An argument to ignore, with its continuations. */
  SKIP: 5,
} as const
type Item = (typeof Item)[keyof typeof Item]

/**
 * Interprets messages one at a time. Not re-entrant (state lives in fields to
 * avoid per-message closures); the agent calls it synchronously.
 */
export class GrammarInterpreter {
  private readonly store: TraceStore
  // Per-message state, reset by apply().
  private engineId: string | null = null
  private uniqueId = ''
  private nowUs = 0
  private tree: Trace | undefined = undefined
  private current: OpenSpan | null = null
  /** The last span= could not be resolved: its tags are dropped silently (already counted). */
  private unresolved = false
  private pendingName: string | null = null
  /** Baggage extracted before the request's tree exists, added to it once it does. */
  private pendingBaggage: Map<string, string> | null = null
  private item: Item = Item.NONE
  private itemKey = ''
  private itemValues: TypedValue[] = []
  private finishes: string[] = []
  private dead = false
  /** The context headers of this message (extract=), for a tree this message creates. */
  private upstream: Upstream | null = null
  /** inject= targets of this message: a span, or null when the name matched no open span. */
  private injects: Array<OpenSpan | null> = []
  /** Where inject= actions go; set by apply(). */
  private out: Action[] = []

  constructor(store: TraceStore) {
    this.store = store
  }

  /**
   * Applies one message. Actions answering its inject= arguments are
   * appended to `out` (the ACK of the NOTIFY).
   */
  apply(engineId: string | null, msg: Message, nowUs: number, out: Action[] = []): void {
    const store = this.store
    store.stats.messages++
    const args = msg.args
    const first = args[0]
    if (first === undefined || first.name !== 'id') {
      this.reject('missing_id', msg, 'message does not start with id=<unique-id>: nothing traced')
      return
    }
    const uniqueId = first.type === DataType.NULL ? '' : valueToString(first)
    // A compact message carries its whole tree: the unique id only labels it
    // (HAProxy sends none unless unique-id-format is set, which costs a uuid
    // per request), so it may be empty there.
    if (args[1]?.name === 'compact') {
      this.applyCompact(engineId, uniqueId, args)
      return
    }
    if (uniqueId === '') {
      this.reject('null_id', msg, 'empty or NULL unique-id (is unique-id-format set in HAProxy?): nothing traced')
      return
    }
    this.engineId = engineId
    this.uniqueId = uniqueId
    this.nowUs = nowUs
    this.tree = store.get(engineId, uniqueId)
    this.current = null
    this.unresolved = false
    this.pendingName = null
    this.item = Item.NONE
    this.finishes.length = 0
    this.injects.length = 0
    this.dead = false
    this.upstream = null
    this.pendingBaggage = null
    this.out = out

    const carrier = this.prescan(args)
    if (carrier !== null) this.extractFrom(carrier)
    for (let i = 1; i < args.length && !this.dead; i++) this.argument(args[i]!)
    this.flushItem()
    this.resolvePending()
    if (!this.dead) {
      // A context (or a decision) extracted by a message that starts no span still belongs to the request.
      const up = this.upstream as Upstream | null // set by extractFrom(), which TypeScript does not see
      if (up !== null && (up.context !== null || up.sampling !== null) && this.tree === undefined) {
        this.tree = store.create(uniqueId, engineId, this.nowUs, up) ?? undefined
      }
      if (this.injects.length > 0) this.answerInjects()
      this.applyFinishes()
    }

    const tree = this.tree
    if (tree !== undefined) tree.lastUs = this.nowUs
    this.tree = undefined
    this.current = null
    this.itemValues = []
    this.upstream = null
  }

  /** The compact profile: the whole tree from this one message, no state kept (compact.ts). */
  private applyCompact(engineId: string | null, uniqueId: string, args: readonly NamedValue[]): void {
    applyCompactRecord(this.store, readCompact(args), engineId, uniqueId)
  }

  /**
   * Reads the arguments that apply to the whole message before any span is
   * started: time= (so every span of the message gets HAProxy's time) and
   * extract= (so a tree this message creates starts in the right trace).
   */
  private prescan(args: readonly NamedValue[]): Carrier | null {
    let carrier: Carrier | null = null
    let header: string | null = null
    for (let i = 1; i < args.length; i++) {
      const a = args[i]!
      if (a.name === '') {
        if (header !== null && a.type !== DataType.NULL) carrier!.set(header, (carrier!.get(header) ?? '') + valueToString(a))
        continue
      }
      header = null
      if (a.name === 'time') this.setTime(a)
      else if (a.name === 'extract') {
        carrier ??= new Map()
        header = valueToString(a).toLowerCase()
      }
    }
    return carrier
  }

  private setTime(a: NamedValue): void {
    let t: number
    if (typeof a.value === 'number') t = a.value
    else if (typeof a.value === 'string' && /^\d+$/.test(a.value)) t = Number(a.value)
    else {
      this.argError('bad_time')
      return
    }
    // Seconds, milliseconds or microseconds since the epoch, told apart by magnitude.
    if (t < 1e11) t *= 1e6
    else if (t < 1e14) t *= 1e3
    // HAProxy and the agent share a host or a clock: more than an hour apart is a mistake.
    if (Math.abs(t - this.nowUs) > 3_600_000_000) {
      this.argError('time_out_of_range')
      return
    }
    this.nowUs = Math.round(t)
  }

  private extractFrom(carrier: Carrier): void {
    const store = this.store
    const e = extract(carrier, store.propagators)
    if (e.invalid !== null) bump(store.stats.contextsInvalid, e.invalid)
    const tree = this.tree
    if (tree === undefined) this.upstream = e
    else store.join(tree, e, this.nowUs)
    if (e.context !== null && (tree === undefined || tree.remote === e.context)) bump(store.stats.contextsExtracted, e.from!)
    if (e.baggage.size > 0) {
      if (tree === undefined) this.pendingBaggage = e.baggage
      else this.addBaggage(tree, e.baggage)
    }
  }

  private addBaggage(tree: Trace, baggage: Map<string, string>): void {
    tree.baggage = new Map([...(tree.baggage ?? []), ...baggage])
    const root = tree.root
    if (root !== null && tree.open.has(root.rec.name)) {
      for (const [k, v] of baggage) root.setBaggage(k, v, this.store.spanLimits)
    }
  }

  /** set-var actions with the context of each inject= target, in every configured format. */
  private answerInjects(): void {
    const tree = this.tree
    const store = this.store
    for (const span of this.injects) {
      if (span === null || tree === undefined) {
        this.argError('inject_not_found')
        continue
      }
      // The downstream learns the decision: it can no longer change.
      if (!tree.decided) store.settle(tree)
      const ctx: SpanContext = { traceId: tree.traceId, spanId: span.rec.spanId, sampled: tree.sampled, traceState: tree.traceState }
      // The request's incoming baggage belongs to the whole trace; the span's own items come on top.
      const baggage = tree.baggage === null ? span.baggage : span.baggage === null ? tree.baggage : new Map([...tree.baggage, ...span.baggage])
      for (const v of inject(ctx, baggage, store.propagators)) {
        this.out.push(setVar(VarScope.TXN, v.name, tv.string(v.value)))
      }
      tree.injected = true
      store.stats.contextsInjected++
    }
  }

  private argument(a: NamedValue): void {
    if (a.name === '') {
      switch (this.item) {
        case Item.TAG:
        case Item.BAGGAGE:
        case Item.LOG:
          this.itemValues.push(a)
          return
        case Item.FINISH:
          this.finishes.push(valueToString(a))
          return
        case Item.SKIP:
          return
        default:
          this.resolvePending()
          this.argError('unexpected_value')
          return
      }
    }
    this.flushItem()
    switch (a.name) {
      case 'span':
        this.resolvePending()
        this.pendingName = valueToString(a)
        this.item = Item.NONE
        return
      case 'child-of':
      case 'follows-from': {
        const name = this.pendingName
        if (name === null) {
          this.argError('reference_without_span')
          this.item = Item.SKIP
          return
        }
        this.pendingName = null
        this.resolveSpan(name, valueToString(a), a.name === 'follows-from')
        this.item = Item.NONE
        return
      }
      case 'tag':
      case 'baggage':
      case 'log':
        this.resolvePending()
        if (this.current === null) {
          if (!this.unresolved) this.argError('no_current_span')
          this.item = Item.SKIP
          return
        }
        this.item = a.name === 'tag' ? Item.TAG : a.name === 'baggage' ? Item.BAGGAGE : Item.LOG
        this.itemKey = valueToString(a)
        this.itemValues = []
        return
      case 'finish':
        this.resolvePending()
        this.finishes.push(valueToString(a))
        this.item = Item.FINISH
        return
      case 'time':
      case 'extract':
        // Read by prescan() before the spans of the message.
        this.resolvePending()
        this.item = Item.SKIP
        return
      case 'inject': {
        this.resolvePending()
        const name = valueToString(a)
        this.injects.push(name === '' ? this.current : (this.tree?.open.get(name) ?? null))
        this.item = Item.SKIP
        return
      }
      case 'id':
        this.resolvePending()
        this.argError('repeated_id')
        this.item = Item.SKIP
        return
      default:
        // A reference binds only when it directly follows span=; anything else settles the span.
        this.resolvePending()
        this.argError('unknown_argument')
        this.item = Item.SKIP
    }
  }

  /** Applies a completed tag/baggage/log argument to the current span. */
  private flushItem(): void {
    const item = this.item
    if (item === Item.NONE || item === Item.SKIP || item === Item.FINISH) return
    this.item = Item.NONE
    const span = this.current!
    const values = this.itemValues
    const limits = this.store.spanLimits
    if (values.length === 0) {
      this.argError('missing_value')
      return
    }
    span.lastUs = this.nowUs
    if (item === Item.TAG) {
      const v = valuesToAttribute(values)
      if (v !== undefined) span.setTag(this.itemKey, v, limits)
    } else if (item === Item.BAGGAGE) {
      span.setBaggage(this.itemKey, valuesToString(values), limits)
    } else {
      span.addEvent(this.itemKey, valuesToString(values), this.nowUs, limits)
    }
  }

  /** A span= not followed by a reference: a root, or the child of the root. */
  private resolvePending(): void {
    const name = this.pendingName
    if (name === null) return
    this.pendingName = null
    this.resolveSpan(name, null, false)
  }

  private resolveSpan(name: string, refName: string | null, followsFrom: boolean): void {
    const store = this.store
    this.current = null
    this.unresolved = true
    if (name === '') {
      this.argError('empty_span_name')
      return
    }
    let tree = this.tree
    const existing = tree?.open.get(name)
    if (existing !== undefined) {
      // Selecting an open span again (e.g. to tag "HTTP response" from a second message).
      this.current = existing
      this.unresolved = false
      existing.lastUs = this.nowUs
      return
    }
    let parent: OpenSpan | null = null
    if (refName !== null) {
      parent = tree?.open.get(refName) ?? null
      if (parent === null) {
        // As in the C agent: a reference to a span that is not open creates no span.
        this.argError('reference_not_found')
        store.debug({ span: name, reference: refName, uniqueId: this.uniqueId }, 'referenced span is not open: span not created')
        return
      }
    } else if (tree !== undefined && tree.root !== null) {
      // A tree has one root: a second span without a reference joins the tree under it.
      parent = tree.root
    }
    if (tree === undefined) {
      tree = store.create(this.uniqueId, this.engineId, this.nowUs, this.upstream) ?? undefined
      if (tree === undefined) {
        bump(store.stats.messagesRejected, 'tree_cap')
        this.dead = true
        return
      }
      this.tree = tree
      if (this.pendingBaggage !== null) {
        tree.baggage = this.pendingBaggage
        this.pendingBaggage = null
      }
    }
    const span = store.startSpan(tree, name, parent, followsFrom, this.nowUs)
    if (span === null) return
    this.current = span
    this.unresolved = false
  }

  private applyFinishes(): void {
    const store = this.store
    for (const name of this.finishes) {
      const tree = this.tree
      if (tree === undefined) {
        this.argError('finish_not_found')
        continue
      }
      if (name === '*') {
        store.complete(tree, this.nowUs)
        this.tree = undefined
        return
      }
      const span = name === '' ? this.current : (tree.open.get(name) ?? null)
      if (span === null) {
        this.argError('finish_not_found')
        store.debug({ span: name, uniqueId: this.uniqueId }, 'finish of a span that is not open')
        continue
      }
      if (span === tree.root) {
        // Finishing the root completes the tree: whatever is still open ends with it.
        store.complete(tree, this.nowUs)
        this.tree = undefined
        return
      }
      store.endSpan(tree, span, this.nowUs)
      if (span === this.current) this.current = null
    }
  }

  private argError(reason: string): void {
    bump(this.store.stats.argumentErrors, reason)
  }

  private reject(reason: string, msg: Message, text: string): void {
    bump(this.store.stats.messagesRejected, reason)
    this.store.warnOnce(reason, { message: msg.name }, text)
  }
}
