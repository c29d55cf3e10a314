import type { Logger } from '../log/index.js';
import { metricsOn } from '../observe/metrics.js';
import { ATTR, endSpan, SpanKind, startSpan, contextOf, tracingOn, withSpan, type Context, type Span } from '../observe/tracing.js';
import { logMessage } from '../log/msglog.js';
import type { MessageType } from '../wire/registry.js';
import { RpcError } from './errors.js';
import type { Link } from './link.js';
import { L } from './messages.js';
import { ClientMethod, CodeCounts, retireRpc, rpcEngines, ServerMethod, type RpcCounts } from './metrics.js';
import { receiveTraceContext, sendTraceContext, takeTraceContext } from './trace.js';

/** Responses carry the call id with the top bit set; requests without; one-way messages use 0. */
export const RESPONSE_BIT = 0x80000000;
const MAX_CALL_ID = 0x7fffffff;

/** The peer at the other end of a link: its id, service name and logical address. */
export interface PeerInfo {
  readonly id: string;
  readonly name: string;
  readonly addr: number;
}

/** What a handler gets besides the request: the peer, the method, and a signal aborted when the call is cancelled. */
export interface CallContext {
  readonly peer: PeerInfo;
  /** The request message's name. */
  readonly method: string;
  /** Aborted when the caller cancels, its deadline passes, or the link drops. */
  readonly signal: AbortSignal;
}

/** An outgoing call, as client interceptors see it. */
export interface ClientCall {
  readonly method: string;
  readonly peer: PeerInfo;
  readonly request: unknown;
  readonly timeoutMs: number;
}

/** An incoming call or message, as server interceptors see it. */
export interface ServerCall {
  readonly kind: 'rpc' | 'message';
  readonly method: string;
  readonly peer: PeerInfo;
  readonly request: unknown;
}

/** Middleware around outgoing calls: logging, metrics, auth headers. Call next() to proceed. */
export type ClientInterceptor = (call: ClientCall, next: () => Promise<unknown>) => Promise<unknown>;
/** Middleware around incoming calls and messages. Throw to refuse. */
export type ServerInterceptor = (call: ServerCall, next: () => Promise<unknown>) => Promise<unknown>;

/** A message as handlers return and senders pass it: any field may be left out (protobuf defaults). */
export type Init<T> = Partial<T>;
/** Answers one request type. */
export type RpcHandler<Req, Res> = (req: Req, ctx: CallContext) => Init<Res> | Promise<Init<Res>>;
/** Receives one one-way message type. */
export type MessageHandler<T> = (msg: T, ctx: CallContext) => void | Promise<void>;

type RpcEntry = { kind: 'rpc'; req: MessageType<unknown>; res: MessageType<unknown>; fn: RpcHandler<unknown, unknown>; stats: ServerMethod };
type Entry = RpcEntry | { kind: 'message'; type: MessageType<unknown>; fn: MessageHandler<unknown>; stats: ServerMethod };

interface PendingCall {
  readonly res: MessageType<unknown>;
  readonly link: Link;
  readonly deadline: number;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly stats: ClientMethod;
  /** performance.now() at send, when metrics are on; else 0. */
  readonly sentAt: number;
  readonly span: Span | undefined;
}

/** One incoming call's context; the AbortController is made only if a handler asks for the signal. */
class IncomingContext implements CallContext {
  private controller: AbortController | undefined;
  private abortedWith: string | undefined;
  constructor(
    readonly peer: PeerInfo,
    readonly method: string,
  ) {}
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.abortedWith !== undefined && !this.controller.signal.aborted) this.controller.abort(new RpcError('cancelled', this.abortedWith));
    return this.controller.signal;
  }
  abort(reason: string): void {
    this.abortedWith = reason;
    this.controller?.abort(new RpcError('cancelled', reason));
  }
}

export interface RpcOptions {
  maxInflight: number;
  logger: Logger;
  /** This node's service id, for spans. */
  selfId?: string;
}

/**
 * Calls and handlers over links: correlation ids, deadlines, cancellation,
 * typed remote errors, interceptors, and the drain gate used by shutdown.
 */
export class RpcEngine implements RpcCounts {
  private readonly handlers = new Map<number, Entry>();
  readonly client = new Map<number, ClientMethod>();
  readonly server = new Map<number, ServerMethod>();
  readonly unknown = new CodeCounts();
  private readonly pending = new Map<number, PendingCall>();
  private readonly incoming = new Map<Link, Map<number, IncomingContext>>();
  private nextCallId = 0;
  private inflightCount = 0;
  private draining = false;
  private drainWaiters: Array<() => void> = [];
  readonly clientInterceptors: ClientInterceptor[] = [];
  readonly serverInterceptors: ServerInterceptor[] = [];
  private readonly sweeper: NodeJS.Timeout;
  unknownMessages = 0;

  constructor(private readonly opts: RpcOptions) {
    this.sweeper = setInterval(() => this.sweep(), 20);
    this.sweeper.unref();
    rpcEngines.add(this);
  }

  get inflight(): number {
    return this.inflightCount;
  }

  get pendingCalls(): number {
    return this.pending.size;
  }

  handleRpc<Req, Res>(req: MessageType<Req>, res: MessageType<Res>, fn: RpcHandler<Req, Res>): void {
    this.claim(req.id, req.name);
    this.handlers.set(req.id, { kind: 'rpc', req, res, fn, stats: this.serverMethod(req) } as Entry);
  }

  handleMessage<T>(type: MessageType<T>, fn: MessageHandler<T>): void {
    this.claim(type.id, type.name);
    this.handlers.set(type.id, { kind: 'message', type, fn, stats: this.serverMethod(type) } as Entry);
  }

  private serverMethod(type: MessageType<unknown>): ServerMethod {
    let m = this.server.get(type.id);
    if (!m) this.server.set(type.id, (m = new ServerMethod(type.name)));
    return m;
  }

  private clientMethod(type: MessageType<unknown>): ClientMethod {
    let m = this.client.get(type.id);
    if (!m) this.client.set(type.id, (m = new ClientMethod(type.name)));
    return m;
  }

  private claim(id: number, name: string): void {
    const existing = this.handlers.get(id);
    if (existing) throw new TypeError(`a handler for message ${id} (${name}) is already registered`);
  }

  // ---- caller side --------------------------------------------------------

  /** A one-way message on a link; false when the link is closed. */
  sendMessage<T>(link: Link, type: MessageType<T>, msg: Init<T>): boolean {
    const body = type.encode(msg);
    logMessage(this.opts.logger, 'send', type.name, link.peerId, body.length);
    return link.session.send(type.id, 0, body);
  }

  call<Req, Res>(link: Link, peer: PeerInfo, req: MessageType<Req>, res: MessageType<Res>, request: Init<Req>, timeoutMs: number, signal?: AbortSignal): Promise<Res> {
    const send = () => this.sendCall(link, req, res, request, timeoutMs, signal) as Promise<unknown>;
    if (this.clientInterceptors.length === 0) return send() as Promise<Res>;
    const call: ClientCall = { method: req.name, peer, request, timeoutMs };
    return runChain(this.clientInterceptors, call, send) as Promise<Res>;
  }

  private sendCall<Req, Res>(link: Link, req: MessageType<Req>, res: MessageType<Res>, request: Init<Req>, timeoutMs: number, signal?: AbortSignal): Promise<Res> {
    if (signal?.aborted) return Promise.reject(new RpcError('cancelled', 'the call was cancelled before it was sent'));
    this.nextCallId = this.nextCallId >= MAX_CALL_ID ? 1 : this.nextCallId + 1;
    const id = this.nextCallId;
    const stats = this.clientMethod(req as MessageType<unknown>);
    const sentAt = metricsOn() ? performance.now() : 0;
    const span = tracingOn() ? startSpan(req.name, SpanKind.CLIENT, { [ATTR.method]: req.name, [ATTR.service]: this.opts.selfId ?? '', [ATTR.peer]: link.peerId }) : undefined;
    return new Promise<Res>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      let call: PendingCall;
      if (signal) {
        const onAbort = () => this.abandon(id, new RpcError('cancelled', 'the call was cancelled'), 'cancelled by the caller');
        signal.addEventListener('abort', onAbort, { once: true });
        const clear = () => signal.removeEventListener('abort', onAbort);
        call = { res, link, deadline, resolve: (v) => (clear(), resolve(v as Res)), reject: (e) => (clear(), reject(e)), stats, sentAt, span };
      } else {
        call = { res, link, deadline, resolve: resolve as (v: unknown) => void, reject, stats, sentAt, span };
      }
      this.pending.set(id, call);
      if (span) sendTraceContext(link.session, contextOf(span));
      const body = req.encode(request as Req);
      logMessage(this.opts.logger, 'send', req.name, link.peerId, body.length);
      if (!link.session.send(req.id, id, body)) {
        this.pending.delete(id);
        this.fail(call, new RpcError('unavailable', `link to ${link.peerId} is closed`));
      }
    });
  }

  /** A pending call is answered: counted, timed, its span ended. */
  private settle(p: PendingCall, code: string, message?: string): void {
    p.stats.codes.add(code);
    if (p.sentAt !== 0) p.stats.latency.observeSince(p.sentAt);
    if (p.span) endSpan(p.span, code, message);
  }

  private fail(p: PendingCall, err: RpcError): void {
    this.settle(p, err.code, err.message);
    p.reject(err);
  }

  /** Fails a pending call locally and tells the callee to stop. */
  private abandon(id: number, err: RpcError, reason: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.link.session.send(L.RpcCancel.id, id, L.RpcCancel.encode({ reason }));
    this.fail(p, err);
  }

  private sweep(): void {
    if (this.pending.size === 0) return;
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) this.abandon(id, new RpcError('timeout', `call to ${p.link.peerId} timed out`), 'deadline exceeded');
    }
  }

  // ---- dispatch -----------------------------------------------------------

  /** Every non-link frame from a peer lands here. */
  dispatch(link: Link, peer: PeerInfo, msgId: number, seq: number, body: Buffer): void {
    if (seq === 0) {
      if (msgId === L.TraceContext.id) return receiveTraceContext(link, body);
      return this.onMessage(link, peer, msgId, body);
    }
    if (seq & RESPONSE_BIT) return this.onResponse(link, msgId, (seq & MAX_CALL_ID) >>> 0, body);
    if (msgId === L.RpcCancel.id) {
      this.incoming.get(link)?.get(seq)?.abort(L.RpcCancel.decode(body).reason || 'cancelled');
      return;
    }
    this.onRequest(link, peer, msgId, seq, body);
  }

  private onResponse(link: Link, msgId: number, id: number, body: Buffer): void {
    const p = this.pending.get(id);
    // Timed out or cancelled already; or a response from a peer the call was not sent to (call ids are per node, not per link).
    if (!p || p.link !== link) return;
    this.pending.delete(id);
    logMessage(this.opts.logger, 'recv', msgId === L.RpcError.id ? L.RpcError.name : p.res.name, link.peerId, body.length);
    if (msgId === L.RpcError.id) {
      const e = L.RpcError.decode(body);
      return this.fail(p, RpcError.fromWire(e.code, e.message));
    }
    if (msgId !== p.res.id) return this.fail(p, new RpcError('bad_request', `expected ${p.res.name} (${p.res.id}), got message ${msgId}`));
    let value: unknown;
    try {
      value = p.res.decode(body);
    } catch (err) {
      return this.fail(p, new RpcError('bad_request', `undecodable ${p.res.name}: ${(err as Error).message}`));
    }
    this.settle(p, 'ok');
    p.resolve(value);
  }

  private onMessage(link: Link, peer: PeerInfo, msgId: number, body: Buffer): void {
    const parent = takeTraceContext(link);
    const h = this.handlers.get(msgId);
    if (!h || h.kind !== 'message') {
      this.unknownMessages++;
      this.opts.logger.debug({ peer: peer.id, msgId }, 'dropped a message with no handler');
      return;
    }
    h.stats.received++;
    logMessage(this.opts.logger, 'recv', h.type.name, peer.id, body.length);
    let msg: unknown;
    try {
      msg = h.type.decode(body);
    } catch (err) {
      this.opts.logger.warn({ peer: peer.id, msg: h.type.name, err: (err as Error).message }, 'dropped an undecodable message');
      return;
    }
    const ctx = new IncomingContext(peer, h.type.name);
    const run = () => Promise.resolve(h.fn(msg, ctx));
    const invoke = () => (this.serverInterceptors.length === 0 ? run() : runChain(this.serverInterceptors, { kind: 'message', method: h.type.name, peer, request: msg }, run));
    // One-way messages get a span only when the sender traced them: a message is a hop of some trace, not a root.
    const span = parent !== undefined ? this.serverSpan(h.type.name, SpanKind.CONSUMER, peer, parent) : undefined;
    let done: Promise<unknown>;
    try {
      done = span ? withSpan(span, parent, invoke) : invoke();
    } catch (err) {
      // A synchronous throw must not escape into the link and close it.
      done = Promise.reject(err as Error);
    }
    if (span) done.then(() => endSpan(span, 'ok'), (err: Error) => endSpan(span, 'application', err?.message));
    done.catch((err: Error) => this.opts.logger.error({ peer: peer.id, msg: h.type.name, err }, 'message handler failed'));
  }

  private serverSpan(method: string, kind: SpanKind, peer: PeerInfo, parent: Context | undefined): Span {
    return startSpan(method, kind, { [ATTR.method]: method, [ATTR.service]: this.opts.selfId ?? '', [ATTR.peer]: peer.id }, parent);
  }

  private onRequest(link: Link, peer: PeerInfo, msgId: number, seq: number, body: Buffer): void {
    const parent = takeTraceContext(link);
    const h = this.handlers.get(msgId);
    logMessage(this.opts.logger, 'recv', h?.kind === 'rpc' ? h.req.name : `#${msgId}`, peer.id, body.length);
    if (!h || h.kind !== 'rpc') {
      const code = this.draining ? 'unavailable' : 'unknown_method';
      this.unknown.add(code);
      return this.replyError(link, seq, code, this.draining ? 'the service is shutting down' : `no handler for message ${msgId}`);
    }
    if (this.draining) return this.refuse(h, link, seq, 'unavailable', 'the service is shutting down');
    if (this.inflightCount >= this.opts.maxInflight) return this.refuse(h, link, seq, 'busy', `over ${this.opts.maxInflight} calls in flight`);
    let req: unknown;
    try {
      req = h.req.decode(body);
    } catch (err) {
      return this.refuse(h, link, seq, 'bad_request', `undecodable ${h.req.name}: ${(err as Error).message}`);
    }
    const ctx = new IncomingContext(peer, h.req.name);
    // A request from a caller that does not trace starts a trace here (when this process traces), as an HTTP server would.
    const span = tracingOn() ? this.serverSpan(h.req.name, SpanKind.SERVER, peer, parent) : undefined;
    const invoke = () =>
      this.serverInterceptors.length === 0 ? h.fn(req, ctx) : runChain(this.serverInterceptors, { kind: 'rpc', method: h.req.name, peer, request: req }, () => Promise.resolve(h.fn(req, ctx)));
    let result: unknown;
    try {
      result = span ? withSpan(span, parent, invoke) : invoke();
    } catch (err) {
      // A handler that throws instead of returning fails the call, as a rejection would.
      return this.replyFailure(link, h, seq, err, span);
    }
    // Hot path: a handler that answers synchronously is answered now, with no
    // promises and no in-flight bookkeeping (nothing can cancel it meanwhile).
    if (!isThenable(result)) return this.replyResult(link, h, seq, result, span);
    // Registered after the handler started: no frame (a cancel) can arrive in between.
    let calls = this.incoming.get(link);
    if (!calls) this.incoming.set(link, (calls = new Map()));
    calls.set(seq, ctx);
    this.inflightCount++;
    const settle = (): void => {
      calls.delete(seq);
      this.inflightCount--;
      if (this.inflightCount === 0 && this.drainWaiters.length > 0) {
        for (const w of this.drainWaiters.splice(0)) w();
      }
    };
    result.then(
      (res) => {
        this.replyResult(link, h, seq, res, span);
        settle();
      },
      (err: unknown) => {
        this.replyFailure(link, h, seq, err, span);
        settle();
      },
    );
  }

  private replyResult(link: Link, h: RpcEntry, seq: number, res: unknown, span: Span | undefined): void {
    let encoded: Uint8Array;
    try {
      encoded = h.res.encode(res as Partial<unknown>);
    } catch (err) {
      return this.refuse(h, link, seq, 'application', `cannot encode ${h.res.name}: ${(err as Error).message}`, span);
    }
    h.stats.codes.ok++;
    if (span) endSpan(span, 'ok');
    logMessage(this.opts.logger, 'send', h.res.name, link.peerId, encoded.length);
    link.session.send(h.res.id, (seq | RESPONSE_BIT) >>> 0, encoded);
  }

  private replyFailure(link: Link, h: RpcEntry, seq: number, err: unknown, span: Span | undefined): void {
    if (err instanceof RpcError) return this.refuse(h, link, seq, err.code, err.message, span);
    this.refuse(h, link, seq, 'application', (err as Error | undefined)?.message ?? String(err), span);
  }

  /** Answers a call of a known method with an error, counted by code. */
  private refuse(h: RpcEntry, link: Link, seq: number, code: string, message: string, span?: Span): void {
    h.stats.codes.add(code);
    if (span) endSpan(span, code, message);
    this.replyError(link, seq, code, message);
  }

  private replyError(link: Link, seq: number, code: string, message: string): void {
    const body = L.RpcError.encode({ code, message });
    logMessage(this.opts.logger, 'send', L.RpcError.name, link.peerId, body.length);
    link.session.send(L.RpcError.id, (seq | RESPONSE_BIT) >>> 0, body);
  }

  /** Whether calls are in flight on this link, in either direction. */
  busyOn(link: Link): boolean {
    if ((this.incoming.get(link)?.size ?? 0) > 0) return true;
    for (const p of this.pending.values()) if (p.link === link) return true;
    return false;
  }

  /** The link is gone: its callers fail fast and its handlers see an abort. */
  linkClosed(link: Link, reason: string): void {
    for (const [id, p] of this.pending) {
      if (p.link !== link) continue;
      this.pending.delete(id);
      this.fail(p, new RpcError('unavailable', `link to ${link.peerId} lost: ${reason}`));
    }
    const calls = this.incoming.get(link);
    if (calls) for (const ctx of calls.values()) ctx.abort(`link lost: ${reason}`);
    this.incoming.delete(link);
  }

  /** Refuse new calls; resolves when in-flight ones finish or the timeout passes. */
  drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inflightCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) this.fail(p, new RpcError('unavailable', 'the service is stopped'));
    this.pending.clear();
    retireRpc(this);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function';
}

function runChain<C>(chain: ReadonlyArray<(call: C, next: () => Promise<unknown>) => Promise<unknown>>, call: C, last: () => Promise<unknown>): Promise<unknown> {
  const step = (i: number): Promise<unknown> => (i === chain.length ? last() : (chain[i] as (c: C, n: () => Promise<unknown>) => Promise<unknown>)(call, () => step(i + 1)));
  return step(0);
}
