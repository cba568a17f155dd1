// Preloaded with `node --require dist/bench/thread-tag.cjs` into the tracing
// agent child (tracing-agent-process.ts), so that its per-thread CPU can be
// told apart: Node 20 names every thread "node", and a worker thread cannot
// be asked for its OS thread id from outside. `--require` runs again in every
// worker thread (`--import` does not, on Node 20); in a worker this posts the
// thread's kernel tid (from /proc/thread-self) and its Node threadId on a
// BroadcastChannel that the main thread listens on. CommonJS because of that.
// It changes nothing else in the worker.

import wt = require('node:worker_threads')
import fs = require('node:fs')

// The same name in tracing-agent-process.ts (a CommonJS file cannot export it to ESM here).
const THREAD_TAG_CHANNEL = 'spoa-tracer-bench-thread-tag'

if (!wt.isMainThread) {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop())
    const bc = new BroadcastChannel(THREAD_TAG_CHANNEL)
    bc.postMessage({ tid, threadId: wt.threadId })
    bc.close()
  } catch {
    // not Linux: per-thread CPU is simply not split
  }
}
