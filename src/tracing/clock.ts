// Injectable time source, in epoch microseconds (an exact integer in a double
// until the year 2255). Tests pass a manual clock. The system clock is the
// wall clock read once a second and advanced in between with the monotonic
// clock: microsecond resolution (Date.now() has only milliseconds), NTP
// corrections reach span times within a second, and it never goes backwards,
// so no span of a request ends before it starts.

import { performance } from 'node:perf_hooks'

export interface Clock {
  nowUs(): number
}

export class SystemClock implements Clock {
  private anchorWallUs = 0
  private anchorMono = -Infinity
  private last = 0

  nowUs(): number {
    const mono = performance.now()
    if (mono - this.anchorMono > 1000) {
      this.anchorMono = mono
      this.anchorWallUs = Date.now() * 1000
    }
    const t = Math.round(this.anchorWallUs + (mono - this.anchorMono) * 1000)
    if (t > this.last) this.last = t
    return this.last
  }
}

/** A clock tests can set and advance. */
export class ManualClock implements Clock {
  constructor(public us = 1_700_000_000_000_000) {}
  nowUs(): number {
    return this.us
  }
  advance(ms: number): void {
    this.us += Math.round(ms * 1000)
  }
}
