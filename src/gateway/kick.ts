/** Reason codes of the Kick frame (docs/protocol.md). */
export const KickCode = {
  /** The agent is shutting down. */
  SHUTDOWN: 1,
  /** No Ping within the heartbeat window. */
  HEARTBEAT_TIMEOUT: 2,
  /** Over the messages-per-second limit. */
  RATE_LIMIT: 3,
  /** A frame over the size limit. */
  FRAME_TOO_LARGE: 4,
  /** A frame that could not be parsed. */
  BAD_FRAME: 5,
  /** A message id that is in no route. */
  UNKNOWN_MESSAGE: 6,
  /** Handshake missing, late, or with an unsupported version. */
  BAD_HANDSHAKE: 7,
  /** The bound backend is gone for good (policy "disconnect"). */
  BACKEND_GONE: 8,
  /** A backend asked to close this client. */
  KICKED: 9,
  /** The client stopped reading and its outbound queue overflowed. */
  SLOW_CONSUMER: 10,
  /**
   * Reconnect (through login) and carry on: the agent or backend holding
   * this client is retiring and its --drain-max ran out (docs/operations.md).
   */
  RECONNECT: 11,
} as const;

/** One of the KickCode values. */
export type KickCodeValue = (typeof KickCode)[keyof typeof KickCode];
