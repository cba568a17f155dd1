// The SPOP agent: sockets, the per-connection state machine and the handler
// seam. Generic: it knows nothing about tracing.

export { AgentServer, type AgentServerOptions, type ListenAddress, DEFAULT_TIMEOUTS } from './server.js'
export { Connection, type ConnectionTimeouts } from './connection.js'
export type { NotifyContext, NotifyHandler } from './handler.js'
export { negotiate, parseCapabilities, type AgentLimits, type Negotiated } from './handshake.js'
export { AgentStats } from './stats.js'
