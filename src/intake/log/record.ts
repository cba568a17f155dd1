// The compact record of a log record: the parameters of its SD-ELEMENT
// (syslog.ts) as the fields every intake shares (tracing/compact.ts). The
// names are those of the SPOE compact message; three are the log record's
// own: `v` (the record version, "1"), `id` (HAProxy's unique id, the SPOE
// message's first argument) and `tag.<key>` (an attribute, the SPOE
// message's `tag=<key> <value>`).

import { COMPACT_FIELDS, type CompactFields, emptyCompact } from '../../tracing/compact.js'

/** The record versions this agent reads. */
export const RECORD_VERSION = '1'

export type LogRecord = { fields: CompactFields; uniqueId: string } | { error: 'bad_version' }

export function readLogRecord(params: ReadonlyArray<readonly [string, string]>): LogRecord {
  const f = emptyCompact()
  let version: string | null = null
  let uniqueId = ''
  for (const [name, value] of params) {
    const set = COMPACT_FIELDS[name]
    if (set !== undefined) set(f, value)
    else if (name === 'v') version ??= value
    else if (name === 'id') uniqueId = value
    else if (name.startsWith('tag.') && name.length > 4 && value !== '') f.tags.push([name.slice(4), [value]])
  }
  if (version !== RECORD_VERSION) return { error: 'bad_version' }
  return { fields: f, uniqueId }
}
