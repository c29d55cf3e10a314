/**
 * Codes a request can fail with. The first five, and `busy`, come from the
 * agent or the backend (docs/protocol.md, "Errors and notices from the
 * agent"); the rest are decided by the client itself.
 */
export type ClientErrorCode =
  | 'unauthenticated'
  | 'unavailable'
  | 'unknown_method'
  | 'bad_request'
  | 'application'
  /** No answer within the request's timeout. */
  | 'timeout'
  /** The connection dropped (or was never up) before an answer came. */
  | 'closed'
  /** Too many requests in flight: this client's (option maxPending), or the backend's queue for this client. */
  | 'busy'
  /** The answer was not the expected message type, or did not decode. */
  | 'bad_response'
  /** The agent sent a Kick during connect (full, shutting down, bad handshake). */
  | 'kicked'
  // Backends may use codes of their own (an RpcError code, say).
  | (string & {});

/** A request, connect or join that failed; `code` says why (timeout, closed, busy, or the server's error code). */
export class ClientError extends Error {
  override name = 'ClientError';

  constructor(
    readonly code: ClientErrorCode,
    message: string,
  ) {
    super(message);
  }
}
