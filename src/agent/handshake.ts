// HELLO negotiation (SPOE.txt 3.2.4-3.2.5), as a pure function of the
// HAPROXY-HELLO payload and the agent's limits. Tolerant the way HAProxy's
// peers need: any integer type for max-frame-size, unknown keys skipped,
// unknown capabilities ignored, capabilities missing = none offered.
//
// pipelining and async are symmetrical: announced only when HAProxy offered
// them too. fragmentation is not (SPOE.txt 3.2.1: "an asymmetrical
// capability, it only concerns the peer that announces it"): it says the
// agent can *receive* fragmented frames, so it is announced whenever it is
// configured, whatever HAProxy offered. HAProxy 2.x never offers it (it
// cannot receive fragments) and fragments its NOTIFYs only for an agent that
// announced it; the agent never sends fragments. docs/PROTOCOL.md has more.

import {
  type Capability,
  CAPABILITIES,
  DataType,
  type KvList,
  kvGet,
  MIN_MAX_FRAME_SIZE,
  SPOP_VERSION,
  SpopError,
  Status,
} from '../spop/index.js'

export interface AgentLimits {
  /** The largest frame the agent accepts; the reply is min(this, HAProxy's). */
  maxFrameSize: number
  /**
   * What the agent is configured to support. The reply has the symmetrical
   * ones HAProxy offered too, and fragmentation whenever it is configured.
   */
  capabilities: readonly Capability[]
}

export interface Negotiated {
  version: typeof SPOP_VERSION
  maxFrameSize: number
  capabilities: Capability[]
  /** What HAProxy offered, verbatim, for logs. */
  offered: string
  engineId: string | null
  healthcheck: boolean
}

/** Parses "Major.Minor" into major*1000 + minor, as HAProxy does; NaN if malformed. */
function parseVersion(s: string): number {
  const m = /^\s*(\d+)\.(\d+)\s*$/.exec(s)
  return m ? Number(m[1]) * 1000 + Number(m[2]) : NaN
}

/** The capability tokens of a comma-separated list; spaces around tokens do not count. */
export function parseCapabilities(s: string): string[] {
  return s
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '')
}

const isInteger = (type: number): boolean => type >= DataType.INT32 && type <= DataType.UINT64

export function negotiate(kv: KvList, limits: AgentLimits): Negotiated {
  const versions = kvGet(kv, 'supported-versions')
  if (!versions || versions.type !== DataType.STRING) {
    throw new SpopError('ERR_SPOP_NO_VERSION', Status.NO_VSN)
  }
  // Announcing a major version means supporting every minor of it from .0 on.
  const ours = parseVersion(SPOP_VERSION)
  const ok = versions.value.split(',').some((v) => {
    const n = parseVersion(v)
    return Math.floor(n / 1000) === Math.floor(ours / 1000) && n >= ours
  })
  if (!ok) {
    throw new SpopError('ERR_SPOP_BAD_VERSION', Status.BAD_VSN, `unsupported version: "${versions.value}"`)
  }

  const mfs = kvGet(kv, 'max-frame-size')
  if (!mfs || !isInteger(mfs.type) || typeof mfs.value !== 'number') {
    throw new SpopError('ERR_SPOP_NO_FRAME_SIZE', Status.NO_FRAME_SIZE)
  }
  if (mfs.value < MIN_MAX_FRAME_SIZE) {
    throw new SpopError(
      'ERR_SPOP_BAD_FRAME_SIZE',
      Status.BAD_FRAME_SIZE,
      `max-frame-size ${mfs.value} is below ${MIN_MAX_FRAME_SIZE}`,
    )
  }

  const caps = kvGet(kv, 'capabilities')
  const offered = caps && caps.type === DataType.STRING ? caps.value : ''
  const offeredSet = new Set(parseCapabilities(offered))
  const capabilities = CAPABILITIES.filter((c) => limits.capabilities.includes(c) && (c === 'fragmentation' || offeredSet.has(c)))

  const engine = kvGet(kv, 'engine-id')
  const hc = kvGet(kv, 'healthcheck')
  return {
    version: SPOP_VERSION,
    maxFrameSize: Math.min(mfs.value, limits.maxFrameSize),
    capabilities,
    offered,
    engineId: engine && engine.type === DataType.STRING ? engine.value : null,
    healthcheck: hc !== undefined && hc.type === DataType.BOOL && hc.value,
  }
}
