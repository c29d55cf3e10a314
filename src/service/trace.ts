/**
 * Trace context on service links: a TraceContext frame (id 213, seq 0) just
 * before the frame it describes. Sent only when the sender traces and has a
 * valid span; read back into the link, where the next frame dispatched takes it.
 */
import type { Session } from '../net/session.js';
import { carrierOf, contextFrom, tracingOn, type Context } from '../observe/tracing.js';
import type { Link } from './link.js';
import { L } from './messages.js';

/** Writes the TraceContext frame for `ctx`, if it holds a span to carry. */
export function sendTraceContext(session: Session, ctx: Context): void {
  const fields = carrierOf(ctx);
  if (fields) session.send(L.TraceContext.id, 0, L.TraceContext.encode({ fields }));
}

/** A TraceContext frame arrived: its context waits on the link for the next frame. */
export function receiveTraceContext(link: Link, body: Buffer): void {
  // A process that does not trace does not even decode it.
  if (!tracingOn()) return;
  let fields: Record<string, string>;
  try {
    fields = L.TraceContext.decode(body).fields;
  } catch {
    link.trace = undefined;
    return;
  }
  link.trace = contextFrom(fields);
}

/** The context the last TraceContext frame left for this frame, taken off the link. */
export function takeTraceContext(link: Link): Context | undefined {
  const ctx = link.trace;
  if (ctx !== undefined) link.trace = undefined;
  return ctx;
}
