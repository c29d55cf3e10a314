/** Codes a caller can see; every failed call carries exactly one. */
export type RpcErrorCode =
  /** The callee has no handler for the request's message. */
  | 'unknown_method'
  /** The deadline passed before a response arrived. */
  | 'timeout'
  /** No instance to call, the link dropped, or the callee is shutting down. */
  | 'unavailable'
  /** The callee is at its limit of calls in flight, or a pending queue is full. */
  | 'busy'
  /** The handler threw. */
  | 'application'
  /** The caller cancelled the call. */
  | 'cancelled'
  /** The request could not be decoded or was not allowed. */
  | 'bad_request'
  /** The target's cluster has no harbor this side can reach (or none at all). */
  | 'unreachable';

const CODES: ReadonlySet<string> = new Set<RpcErrorCode>(['unknown_method', 'timeout', 'unavailable', 'busy', 'application', 'cancelled', 'bad_request', 'unreachable']);

/** A failed RPC (or a refused client message): `code` says why, and crosses the link to the caller. */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly code: RpcErrorCode,
    message: string,
  ) {
    super(message);
  }

  static fromWire(code: string, message: string): RpcError {
    return new RpcError(CODES.has(code) ? (code as RpcErrorCode) : 'application', message);
  }
}

/** Thrown by the service API for misuse (bad target, not started, ...). */
export class ServiceError extends Error {
  override name = 'ServiceError';
}
