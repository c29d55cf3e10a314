/**
 * The agent's spans: one per client message it forwards, the root of that
 * player action's trace. A request's span lasts until its answer passes back
 * through the agent (or fails, or the client leaves); a one-way message's
 * ends once it is forwarded. Used only while tracingOn().
 */
import { ATTR, contextOf, endSpan, SpanKind, startSpan, type Context, type Span } from '../observe/tracing.js';
import type { ClientConn } from './client-conn.js';
import { C } from './messages.js';

interface Open {
  readonly span: Span;
  readonly backend: string;
}

/** Open spans per client are capped like the client's in-flight requests. */
const MAX_PER_CLIENT = 64;

export class RequestSpans {
  private readonly open = new Map<ClientConn, Map<number, Open>>();

  /** True while some span is open: the agent's answer path checks this first. */
  get active(): boolean {
    return this.open.size > 0;
  }

  /** Starts the span of a message being forwarded; returns the context to send with it. */
  start(agentId: string, client: ClientConn, msgId: number, msgName: string, seq: number, backend: string): { span: Span; ctx: Context } {
    const span = startSpan(`agent ${msgName}`, SpanKind.SERVER, {
      [ATTR.method]: msgName,
      [ATTR.msg]: msgName,
      [ATTR.msgId]: msgId,
      [ATTR.service]: agentId,
      [ATTR.peer]: backend,
      [ATTR.client]: client.id,
      'gamemesh.transport': client.conn.transport,
    });
    return { span, ctx: contextOf(span) };
  }

  /** After the send: a one-way message's span ends; a request's waits for the answer. */
  sent(client: ClientConn, seq: number, span: Span, backend: string, ok: boolean): void {
    if (!ok) return endSpan(span, 'unavailable', `${backend} is not reachable`);
    if (seq === 0) return endSpan(span, 'ok');
    let mine = this.open.get(client);
    if (!mine) this.open.set(client, (mine = new Map()));
    mine.get(seq)?.span.end();
    mine.set(seq, { span, backend });
    if (mine.size > MAX_PER_CLIENT) {
      const [oldest, o] = mine.entries().next().value as [number, Open];
      mine.delete(oldest);
      endSpan(o.span, 'no_answer', 'too many requests in flight for this client');
    }
  }

  /** An answer (or an Error) for `seq` goes back to the client. */
  answered(client: ClientConn, seq: number, msgId: number, body: Uint8Array): void {
    const mine = this.open.get(client);
    const o = mine?.get(seq);
    if (!mine || !o) return;
    mine.delete(seq);
    if (mine.size === 0) this.open.delete(client);
    if (msgId !== C.Error.id) return endSpan(o.span, 'ok');
    let code = 'application';
    let message: string | undefined;
    try {
      ({ code, message } = C.Error.decode(body));
    } catch {
      // An undecodable Error is still an error.
    }
    endSpan(o.span, code || 'application', message);
  }

  /** The backend went down: its requests in flight fail (the agent answers them unavailable). */
  backendDown(backend: string): void {
    for (const [client, mine] of this.open) {
      for (const [seq, o] of mine) {
        if (o.backend !== backend) continue;
        mine.delete(seq);
        endSpan(o.span, 'unavailable', `${backend} went down before answering`);
      }
      if (mine.size === 0) this.open.delete(client);
    }
  }

  clientClosed(client: ClientConn, reason: string): void {
    const mine = this.open.get(client);
    if (!mine) return;
    this.open.delete(client);
    for (const o of mine.values()) endSpan(o.span, 'no_answer', `the client left: ${reason}`);
  }
}
