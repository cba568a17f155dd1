import { ACK_LATENCY_US_BOUNDS, Histogram } from '../util/histogram.js'

// Counters of the SPOP layer. Plain fields and small maps, incremented on the
// hot path at the cost of an add; the metrics endpoint and the periodic
// statistics line read them. Label values come from fixed sets (frame type
// names, status codes, error codes), never from what a peer sends.

export class AgentStats {
  connectionsOpen = 0
  connectionsTotal = 0
  connectionsRejected = 0
  helloCompleted = 0
  healthchecks = 0
  /** Frames received, by frame type name. */
  readonly framesIn = new Map<string, number>()
  /** Frames sent, by frame type name. */
  readonly framesOut = new Map<string, number>()
  notifyReceived = 0
  messagesReceived = 0
  acksSent = 0
  /** AGENT-DISCONNECT sent, by status code. */
  readonly disconnectsSent = new Map<number, number>()
  /** HAPROXY-DISCONNECT received, by status code; codes SPOE.txt does not define all count under -1. */
  readonly disconnectsReceived = new Map<number, number>()
  /** Protocol errors, by SpopError code. */
  readonly protocolErrors = new Map<string, number>()
  handlerErrors = 0
  unknownFrames = 0
  fragmentedNotify = 0
  /** Fragmented NOTIFYs HAProxy aborted (UNSET with FIN|ABORT). */
  fragmentsAborted = 0
  /** Fragmented NOTIFYs the agent aborted (ACK with ABORT): larger than the reassembly bound. */
  fragmentsRefused = 0
  /** ACKs that would have exceeded max-frame-size, sent with fewer actions. */
  acksTrimmed = 0
  /** Actions (set-var) left out of those ACKs. */
  ackActionsDropped = 0
  /** Connections closed by the peer without a DISCONNECT (normal on HAProxy 3.x). */
  closedWithoutDisconnect = 0
  timeouts = 0
  /** NOTIFY frames whose handler has not returned yet, all connections. */
  inflight = 0
  /** From a NOTIFY's arrival to its ACK being queued, microseconds. */
  readonly ackLatencyUs = new Histogram(ACK_LATENCY_US_BOUNDS)
}
