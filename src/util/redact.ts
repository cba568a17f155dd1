// Secrets out of everything the agent prints. An OTLP endpoint may carry
// credentials (http://user:password@host, ?api_key=...) and export headers
// usually do (authorization=Bearer ...): wherever the configuration reaches a
// log line, an error message or the --check output, these go through here.

const MASK = '***'

/** The URL with its userinfo and query values masked; anything unparsable is masked by pattern. */
export function redactUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return redactUrlsIn(url)
  }
  const hadUser = u.username !== '' || u.password !== ''
  const params = [...u.searchParams.keys()]
  if (!hadUser && params.length === 0) return url
  // Built by hand: URL would percent-encode the mask.
  const query = params.length === 0 ? '' : `?${params.map((k) => `${encodeURIComponent(k)}=${MASK}`).join('&')}`
  return `${u.protocol}//${hadUser ? `${MASK}@` : ''}${u.host}${u.pathname}${query}${u.hash}`
}

/** Every URL-like userinfo (scheme://user:password@) in free text masked, e.g. in an error message. */
export function redactUrlsIn(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s"'?#]*@/gi, `$1${MASK}@`)
}

/** Header names kept, values masked: which headers are set is useful, their values are secrets. */
export function redactHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(headers).map((k) => [k, MASK]))
}
