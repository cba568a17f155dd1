// Span status from the HTTP status code, as OpenTelemetry's HTTP semantic
// conventions say (http-spans.md, "Status"): a SERVER span is an error for
// 5xx only (a 404 is the client's mistake, not the server's), a CLIENT span
// for 4xx and 5xx; 1xx-3xx leave the status unset. An error also gets
// error.type, the status code as a string. Applies to any SERVER or CLIENT
// span that carries http.response.status_code, whichever profile made it.

import type { AttrValue, FinishedSpan } from './types.js'
import { StatusCode } from './types.js'

export const HTTP_STATUS_ATTRIBUTE = 'http.response.status_code'

/** The status code an attribute value holds, or 0. */
function statusCode(v: AttrValue | undefined): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{3}$/.test(v.trim()) ? Number(v) : 0
  return Number.isInteger(n) && n >= 100 && n <= 999 ? n : 0
}

/**
 * The error.type the conventions give this span for its status code, or
 * null when the code is not an error for a span of its kind.
 */
export function httpErrorType(kind: FinishedSpan['kind'], code: AttrValue | undefined): string | null {
  const n = statusCode(code)
  if (n === 0) return null
  if ((kind === 'server' && n >= 500) || (kind === 'client' && n >= 400)) return String(n)
  return null
}

/**
 * Sets ERROR (never clears an ERROR set otherwise) and error.type, unless
 * the span already has one. `set` writes an attribute within the span's limits.
 */
export function applyHttpStatus(rec: FinishedSpan, set: (key: string, value: string) => void): void {
  const type = httpErrorType(rec.kind, rec.attributes[HTTP_STATUS_ATTRIBUTE])
  if (type === null) return
  rec.status.code = StatusCode.ERROR
  if (!('error.type' in rec.attributes)) set('error.type', type)
}
