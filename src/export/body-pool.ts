// The OTLP request bodies' memory, recycled: the main thread encodes a batch
// into a buffer from here, moves it to an export worker (transferred, not
// copied), and the worker moves it back once the request is over. Without
// this every batch was a fresh allocation of a few hundred kilobytes that
// died in the worker, where nothing else allocates: its memory stayed until
// V8's external-memory limit forced a collection there, tens of megabytes
// later (docs/BENCHMARKS.md, RSS of the shipped binary). With it, a few
// buffers go round and the agent's memory for bodies is bounded by them.

/** Buffers kept for reuse at most, and the largest size kept (a larger one is left to the GC). */
const MAX_KEPT = 4
const MAX_KEPT_BYTES = 8 * 1024 * 1024
/** New buffers are rounded up to this, so that batches of similar size fit the same buffer. */
const GRAIN = 64 * 1024

export class BodyPool {
  private readonly free: ArrayBuffer[] = []
  /** Buffers this pool made or took back: whole, unshared, safe to transfer even as a shorter view. */
  private readonly ours = new WeakSet<ArrayBuffer>()
  /** Buffers allocated (not reused), for the tests and the benchmark's curiosity. */
  allocated = 0

  /** A buffer of at least `size` bytes, starting at offset 0 of an ArrayBuffer of its own. */
  take(size: number): Buffer {
    let best = -1
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.byteLength
      if (n >= size && (best < 0 || n < this.free[best]!.byteLength)) best = i
    }
    if (best >= 0) {
      const ab = this.free.splice(best, 1)[0]!
      return Buffer.from(ab, 0, ab.byteLength)
    }
    this.allocated++
    // Not Buffer.allocUnsafe: that may be a slice of Node's shared pool, which must never be moved.
    const buf = Buffer.allocUnsafeSlow(Math.ceil(Math.max(size, 1) / GRAIN) * GRAIN)
    this.ours.add(buf.buffer as ArrayBuffer)
    return buf
  }

  /** A buffer back from a worker (or a batch that will not be sent): kept if there is room. */
  give(ab: ArrayBuffer): void {
    if (ab.byteLength === 0 || ab.byteLength > MAX_KEPT_BYTES) return // detached, or too large to keep
    this.ours.add(ab)
    if (this.free.length < MAX_KEPT) {
      this.free.push(ab)
      return
    }
    // Full: keep the larger buffers (they fit any batch).
    let smallest = 0
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[smallest]!.byteLength) smallest = i
    if (this.free[smallest]!.byteLength < ab.byteLength) this.free[smallest] = ab
  }

  /** A buffer back from a worker to be sent again: not reusable yet, but safe to move again as a view of its start. */
  adopt(ab: ArrayBuffer): void {
    this.ours.add(ab)
  }

  /** Whether `ab` came from this pool: then a view of its start can move to a worker with the whole buffer. */
  owns(ab: ArrayBufferLike): boolean {
    return ab instanceof ArrayBuffer && this.ours.has(ab)
  }

  /** Buffers waiting for reuse. */
  get kept(): number {
    return this.free.length
  }
}
