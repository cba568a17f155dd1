// The spoa-opentracing message grammar, interpreted against the trace store.
// Each spoe-message is one ordered list of arguments:
//
//   id=<unique-id>                                    first, always: which request
//   span=<name> [child-of=<name> | follows-from=<name>]   start (or select) a span
//   tag=<key> <value>...   baggage=<key> <value>...   log=<name> <value>...
//   finish=<name> | finish=*
//
// An argument with an empty name continues the previous one (that is how
// `tag=str("http.version") str("HTTP/") req.ver` joins two samples). Names
// repeat freely. Finishes apply at the end of the message, after every span
// it starts exists, as in the C agent, so all of a message's events share one
// timestamp. Mistakes cost the argument, not the message: each is counted.

import { DataType, type Message, type NamedValue, type TypedValue } from '../spop/index.js'
import type { OpenSpan, Trace } from './trace.js'
import { bump } from '../util/counters.js'
import type { TraceStore } from './trace-store.js'
import { valuesToAttribute, valuesToString, valueToString } from './values.js'

const enum Item {
  NONE,
  TAG,
  BAGGAGE,
  LOG,
  FINISH,
  /** An argument to ignore, with its continuations. */
  SKIP,
}

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
  private item: Item = Item.NONE
  private itemKey = ''
  private itemValues: TypedValue[] = []
  private finishes: string[] = []
  private dead = false

  constructor(store: TraceStore) {
    this.store = store
  }

  apply(engineId: string | null, msg: Message, nowUs: number): void {
    const store = this.store
    store.stats.messages++
    const args = msg.args
    const first = args[0]
    if (first === undefined || first.name !== 'id') {
      this.reject('missing_id', msg, 'message does not start with id=<unique-id>: nothing traced')
      return
    }
    const uniqueId = first.type === DataType.NULL ? '' : valueToString(first)
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
    this.dead = false

    for (let i = 1; i < args.length && !this.dead; i++) this.argument(args[i]!)
    this.flushItem()
    this.resolvePending()
    if (!this.dead) this.applyFinishes()

    const tree = this.tree
    if (tree !== undefined) tree.lastUs = nowUs
    this.tree = undefined
    this.current = null
    this.itemValues = []
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
      tree = store.create(this.uniqueId, this.engineId, this.nowUs) ?? undefined
      if (tree === undefined) {
        bump(store.stats.messagesRejected, 'tree_cap')
        this.dead = true
        return
      }
      this.tree = tree
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
