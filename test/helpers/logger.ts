// A pino logger that keeps its lines in memory, for tests that assert on logs.

import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

export interface CapturedLogger {
  logger: Logger
  lines: Array<Record<string, unknown>>
}

export function captureLogger(level = 'debug'): CapturedLogger {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  return { logger: pino({ level }, stream), lines }
}

export const silentLogger = (): Logger => pino({ level: 'silent' })
