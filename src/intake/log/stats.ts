// Counters of the log intake. Label values are fixed reason strings.

export class LogIntakeStats {
  /** Records received (datagrams, or frames of a TCP stream). */
  records = 0
  /** Records whose compact record became a span tree. */
  traced = 0
  /** Valid records without a compact record: requests HAProxy did not trace (HAProxy 2.6 logs them all). */
  untraced = 0
  /** Compact records of requests HAProxy traced with the sampled flag off (counted, never exported). */
  sampledOut = 0
  /**
   * Records that gave nothing, by reason: not_rfc5424, bad_sd, truncated,
   * no_log_format, too_large, bad_frame, bad_version, bad_context, bad_time.
   */
  readonly rejected = new Map<string, number>()
  /** Records HAProxy says it dropped from a ring (its "N events dropped" notices). */
  haproxyDropped = 0
  tcpConnectionsOpen = 0
  tcpConnectionsTotal = 0
  /** TCP connections refused at --log-max-connections. */
  tcpConnectionsRejected = 0
  /** Reads of TCP streams: records / reads is how many records one wake-up takes. */
  tcpReads = 0
  /** Short reads after which the stream rested (--log-read-pause): the socket was empty. */
  tcpRests = 0
}

/** Every rejection reason, so that /metrics shows them at 0 from the start. */
export const REJECT_REASONS = ['not_rfc5424', 'bad_sd', 'truncated', 'no_log_format', 'too_large', 'bad_frame', 'bad_version', 'bad_context', 'bad_time'] as const
