/**
 * How a service asks its own process to end: a node that finished retiring,
 * or an admin POST /stop. serviceMain registers the handler (it stops what
 * `run` returned, flushes the logs, exits); without one (a node used as a
 * library) the caller stops the node itself.
 */
export type ExitHandler = (code: number, reason: string) => void;

let handler: ExitHandler | undefined;

/** Sets the process's exit handler; returns a function that removes it. */
export function onExitRequest(fn: ExitHandler): () => void {
  handler = fn;
  return () => {
    if (handler === fn) handler = undefined;
  };
}

/** Asks the process to stop gracefully and exit with `code`; false when no one handles it. */
export function requestExit(code: number, reason: string): boolean {
  if (!handler) return false;
  handler(code, reason);
  return true;
}
