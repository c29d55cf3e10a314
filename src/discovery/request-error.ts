/** A request the server refuses with an Error frame, leaving the connection open. */
export class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
