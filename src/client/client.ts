import type { MessageType } from '../wire/message-type.js';
import { Emitter } from './emitter.js';
import { ClientError } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { ClientMessages as M, CLIENT_PROTOCOL, type BackendStatus, type Kick } from './messages.js';
import { PendingTable, type Answer } from './pending.js';
import { backoffDelay, DEFAULT_RECONNECT, type ReconnectOptions } from './reconnect.js';
import type { Transport, TransportFactory } from './transport.js';
import { joinRoom, type JoinOptions, type Room } from './room.js';

/** How a GameClient connects, authenticates, times out and reconnects. */
export interface GameClientOptions {
  /** Makes the connection; called again for every reconnect, so it must return a fresh transport. */
  transport: TransportFactory;
  /** Sent in the Handshake (e.g. the JWT from login); backends see it in the session. */
  token?: string;
  /** Free text for the agent's logs, such as "web/1.4.2". */
  clientName?: string;
  /** Default timeout of request() and ping(). Default 10000. */
  requestTimeoutMs?: number;
  /** Time for the connection and the handshake. Default 10000. */
  connectTimeoutMs?: number;
  /** Requests in flight before request() fails with 'busy'. Default 1000. */
  maxPending?: number;
  /** Automatic reconnect after a lost connection; false turns it off. */
  reconnect?: ReconnectOptions | false;
  /**
   * Runs after every successful re-handshake, before `reconnected` fires and
   * while requests already work: log in again, rebind, resubscribe. If it
   * throws, that connection is dropped and counts as a failed attempt.
   */
  onReconnect?: (client: GameClient) => Promise<void>;
  /** Send Ping every heartbeat_sec (default true). Without it the agent drops the client. */
  heartbeat?: boolean;
  /** Where exceptions from listeners and undecodable pushes go. Default console.error. */
  onError?: (err: unknown, where: string) => void;
}

/** What the agent said in its HandshakeAck. */
export interface HandshakeInfo {
  readonly version: number;
  readonly sessionId: string;
  /** The Ping period; updated when the agent announces a new one. */
  readonly heartbeatSec: number;
  readonly serverTimeMs: number;
}

/** Why the client closed for good (the `close` event). */
export interface CloseInfo {
  readonly reason: string;
  /** Set when the agent kicked the client. */
  readonly kick?: Kick;
}

/** A reconnect attempt about to be made (the `reconnecting` event). */
export interface ReconnectingInfo {
  readonly attempt: number;
  readonly delayMs: number;
  /** Why the previous connection (or attempt) ended. */
  readonly reason: string;
}

interface GameClientEvents {
  kick: [kick: Kick];
  backendStatus: [status: BackendStatus];
  close: [info: CloseInfo];
  reconnecting: [info: ReconnectingInfo];
  reconnected: [info: HandshakeInfo];
}

/** Where a GameClient is in its life: idle until connect(), closed for good after close() or a final loss. */
export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Per-request options of request() and ping(). */
export interface RequestOptions {
  timeoutMs?: number;
}

/** One connection's state; callbacks from a transport that is no longer current are ignored. */
interface Conn {
  readonly transport: Transport;
  kick: Kick | undefined;
  /** Why we closed it ourselves, which says more than the transport's "closed by the client". */
  closeReason: string | undefined;
  ended: boolean;
}

interface PushHandler {
  readonly type: MessageType<unknown>;
  readonly fn: (msg: unknown) => void;
}

/**
 * A game client of a gamemesh agent (gateway), over any Transport: the
 * handshake, typed requests matched to their answers by seq, pushes by
 * message id, the automatic heartbeat, and reconnecting with a hook to
 * restore server-side state. Runs in browsers and in Node.
 */
export class GameClient {
  private readonly opts: GameClientOptions;
  private readonly events: Emitter<GameClientEvents>;
  private readonly pending = new PendingTable();
  private readonly pushHandlers = new Map<number, PushHandler[]>();
  private readonly heartbeat: Heartbeat;
  private readonly reportError: (err: unknown, where: string) => void;
  private conn: Conn | undefined;
  /** The connection open() made last, kept after it fails so the reconnect loop can see its Kick. */
  private lastAttempt: Conn | undefined;
  private currentState: ClientState = 'idle';
  private handshake: HandshakeInfo | undefined;
  private connecting: Promise<HandshakeInfo> | undefined;
  /** Set while the reconnect loop owns the connection (including the onReconnect hook). */
  private recovering = false;
  private wakeFromBackoff: (() => void) | undefined;
  private rtt: number | undefined;

  constructor(options: GameClientOptions) {
    this.opts = options;
    this.reportError = options.onError ?? ((err, where) => console.error(`gamemesh client: ${where}:`, err));
    this.events = new Emitter(this.reportError);
    this.heartbeat = new Heartbeat(
      () => void this.ping().catch(() => undefined),
      (silentMs) => this.drop(`heartbeat timeout: nothing from the agent for ${silentMs} ms`, this.conn),
    );
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The current connection's handshake, while open. */
  get info(): HandshakeInfo | undefined {
    return this.currentState === 'open' ? this.handshake : undefined;
  }

  /** The last measured round trip (ms), from ping() or the heartbeat. */
  get rttMs(): number | undefined {
    return this.rtt;
  }

  /** Requests waiting for their answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Bytes the transport has not yet sent, when it knows. */
  get bufferedAmount(): number {
    return this.conn?.transport.bufferedAmount ?? 0;
  }

  // ---- connecting ---------------------------------------------------------

  /**
   * Connects and handshakes. A failure rejects (with 'closed', 'timeout' or
   * 'kicked') and is not retried: the reconnect policy applies to
   * connections that were up. While reconnecting, waits for the outcome.
   */
  connect(): Promise<HandshakeInfo> {
    if (this.currentState === 'open' && this.handshake) return Promise.resolve(this.handshake);
    if (this.currentState === 'reconnecting') return this.nextReconnect();
    if (this.connecting) return this.connecting;
    this.currentState = 'connecting';
    const attempt = this.firstConnect();
    this.connecting = attempt.finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async firstConnect(): Promise<HandshakeInfo> {
    try {
      const info = await this.open();
      // close() may have run between the handshake and here.
      if (this.state !== 'connecting' || !this.conn || this.conn.ended) throw new ClientError('closed', 'closed while connecting');
      this.currentState = 'open';
      return info;
    } catch (err) {
      if (this.state === 'connecting') this.currentState = 'closed';
      throw err;
    }
  }

  private nextReconnect(): Promise<HandshakeInfo> {
    return new Promise((resolve, reject) => {
      const offOk = this.events.on('reconnected', (info) => {
        offOk();
        offClose();
        resolve(info);
      });
      const offClose = this.events.on('close', (info) => {
        offOk();
        offClose();
        reject(new ClientError('closed', info.reason));
      });
    });
  }

  /** One attempt: a new transport, connected and handshaken, with the heartbeat running. */
  private async open(): Promise<HandshakeInfo> {
    const transport = this.opts.transport();
    const conn: Conn = { transport, kick: undefined, closeReason: undefined, ended: false };
    this.conn = conn;
    this.lastAttempt = conn;
    transport.onFrame = (msgId, seq, body) => {
      if (this.conn === conn) this.onFrame(conn, msgId, seq, body);
    };
    transport.onClose = (reason) => this.onTransportClose(conn, reason);
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    try {
      await withTimeout(transport.connect(), timeoutMs, () => transport.close());
    } catch (err) {
      if (this.conn === conn) this.conn = undefined;
      conn.ended = true;
      if (err instanceof ClientError) throw new ClientError(err.code, `connecting took over ${timeoutMs} ms`);
      throw new ClientError('closed', `cannot connect: ${(err as Error).message}`);
    }
    if (this.conn !== conn) {
      transport.close();
      throw new ClientError('closed', 'closed by the client while connecting');
    }
    const seq = this.pending.nextSeq();
    const answer = this.pending.expect(seq, Math.max(1, deadline - Date.now()), 'Handshake');
    transport.send(M.Handshake.id, seq, M.Handshake.encode({ version: CLIENT_PROTOCOL, token: this.opts.token ?? '', client: this.opts.clientName ?? 'gamemesh-js' }));
    let frame: Answer;
    try {
      frame = await answer;
    } catch (err) {
      this.drop(`handshake failed: ${(err as Error).message}`, conn);
      throw conn.kick ? kickedError(conn.kick) : err;
    }
    // A Kick in the same read as the HandshakeAck has already ended the connection.
    if (conn.ended) throw conn.kick ? kickedError(conn.kick) : new ClientError('closed', `connection lost: ${conn.closeReason ?? 'during the handshake'}`);
    let ack;
    try {
      ack = decodeAnswer(frame, M.HandshakeAck);
    } catch (err) {
      this.drop(`bad handshake answer: ${(err as Error).message}`, conn);
      throw err;
    }
    this.handshake = { version: ack.version, sessionId: ack.session_id, heartbeatSec: ack.heartbeat_sec, serverTimeMs: ack.server_time_ms };
    if (this.opts.heartbeat !== false) this.heartbeat.start(ack.heartbeat_sec);
    return this.handshake;
  }

  // ---- requests -----------------------------------------------------------

  /**
   * Sends `msg` and resolves with the answer of type `resType` (matched by
   * seq). Rejects with a ClientError: the agent's or backend's code when it
   * answers with Error, 'timeout', 'closed' when the connection drops or is
   * not up, 'busy' over maxPending, 'bad_response' for an unexpected answer.
   */
  async request<Req, Res>(reqType: MessageType<Req>, resType: MessageType<Res>, msg: Partial<Req>, options: RequestOptions = {}): Promise<Res> {
    const conn = this.requireOpen(reqType.name);
    const limit = this.opts.maxPending ?? 1000;
    if (this.pending.size >= limit) throw new ClientError('busy', `${this.pending.size} requests in flight (maxPending ${limit})`);
    const body = reqType.encode(msg);
    const seq = this.pending.nextSeq();
    const answer = this.pending.expect(seq, options.timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000, reqType.name);
    conn.transport.send(reqType.id, seq, body);
    return decodeAnswer(await answer, resType);
  }

  /** Sends a one-way message (seq 0). False when not connected. */
  send<T>(type: MessageType<T>, msg: Partial<T>): boolean {
    const conn = this.conn;
    if (this.currentState !== 'open' || !conn || conn.ended) return false;
    conn.transport.send(type.id, 0, type.encode(msg));
    return true;
  }

  /** Round trip to the agent in ms (Ping/Pong). */
  async ping(options: RequestOptions = {}): Promise<number> {
    const conn = this.requireOpen('Ping');
    const seq = this.pending.nextSeq();
    const answer = this.pending.expect(seq, options.timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000, 'Ping');
    const t0 = performance.now();
    conn.transport.send(M.Ping.id, seq, M.Ping.encode({}));
    decodeAnswer(await answer, M.Pong);
    this.rtt = performance.now() - t0;
    return this.rtt;
  }

  private requireOpen(what: string): Conn {
    const conn = this.conn;
    if (this.currentState !== 'open' || !conn || conn.ended) throw new ClientError('closed', `cannot send ${what}: the client is ${this.currentState}`);
    return conn;
  }

  // ---- rooms (docs/rooms.md) ----------------------------------------------

  /**
   * A seat in a room of `roomType` whose creation options match `filter`,
   * or in a new room made with them. Rejects with a ClientError whose code
   * says why: room_full, overloaded (every node is above its memory
   * threshold), unknown_room_type, join_refused...
   */
  joinOrCreate(roomType: string, filter: Readonly<Record<string, unknown>> = {}, options?: JoinOptions): Promise<Room> {
    return joinRoom(this, 'join_or_create', { roomType, options: filter }, options);
  }

  /** A seat in a new room of `roomType`, made with these options. */
  create(roomType: string, roomOptions: Readonly<Record<string, unknown>> = {}, options?: JoinOptions): Promise<Room> {
    return joinRoom(this, 'create', { roomType, options: roomOptions }, options);
  }

  /** A seat in this room (room_full, room_locked, room_not_found otherwise). */
  joinById(roomId: string, joinOptions: Readonly<Record<string, unknown>> = {}, options?: JoinOptions): Promise<Room> {
    return joinRoom(this, 'join_by_id', { roomId, options: joinOptions }, options);
  }

  /** Takes back a seat kept after a drop, from this connection (any agent): reconnect_expired once the window passed. */
  reconnectRoom(roomId: string, token: string, options?: JoinOptions): Promise<Room> {
    return joinRoom(this, 'reconnect', { roomId, token }, options);
  }

  // ---- events -------------------------------------------------------------

  /** Pushes (seq 0) of this message type. Returns the function that unsubscribes. */
  on<T>(type: MessageType<T>, handler: (msg: T) => void): () => void {
    let list = this.pushHandlers.get(type.id);
    if (!list) this.pushHandlers.set(type.id, (list = []));
    const entry: PushHandler = { type, fn: handler as (msg: unknown) => void };
    list.push(entry);
    return () => {
      const current = this.pushHandlers.get(type.id);
      const i = current ? current.indexOf(entry) : -1;
      if (current && i >= 0) current.splice(i, 1);
    };
  }

  /** The agent kicked this client; `close` (or a reconnect, for kick codes the policy allows) follows. */
  onKick(fn: (kick: Kick) => void): () => void {
    return this.events.on('kick', fn);
  }

  /** A backend this client is bound to went down or came back. */
  onBackendStatus(fn: (status: BackendStatus) => void): () => void {
    return this.events.on('backendStatus', fn);
  }

  /** The client is closed for good: close(), a kick, reconnect off or given up. */
  onClose(fn: (info: CloseInfo) => void): () => void {
    return this.events.on('close', fn);
  }

  /** The connection was lost and an attempt is scheduled. */
  onReconnecting(fn: (info: ReconnectingInfo) => void): () => void {
    return this.events.on('reconnecting', fn);
  }

  /** Connected again, after onReconnect succeeded. */
  onReconnected(fn: (info: HandshakeInfo) => void): () => void {
    return this.events.on('reconnected', fn);
  }

  // ---- inbound ------------------------------------------------------------

  private onFrame(conn: Conn, msgId: number, seq: number, body: Uint8Array): void {
    this.heartbeat.heard();
    // Anything with a seq answers a request; one no longer waited for (timed out) is dropped.
    if (seq !== 0) {
      this.pending.settle(seq, { msgId, body });
      return;
    }
    switch (msgId) {
      case M.Kick.id:
        return this.handleKick(conn, body);
      case M.HandshakeAck.id:
        return this.onNewPeriod(body);
      case M.BackendStatus.id:
        return this.decodeAndEmit(body, M.BackendStatus, (status) => this.events.emit('backendStatus', status));
      default:
        return this.dispatchPush(msgId, body);
    }
  }

  private handleKick(conn: Conn, body: Uint8Array): void {
    let kick: Kick;
    try {
      kick = M.Kick.decode(body);
    } catch {
      kick = { code: 0, reason: 'undecodable Kick' };
    }
    conn.kick = kick;
    this.events.emit('kick', kick);
    this.drop(`kicked by the agent (${kick.code}): ${kick.reason}`, conn);
  }

  /** The agent changed the heartbeat period (docs/protocol.md, Flow, step 3). */
  private onNewPeriod(body: Uint8Array): void {
    this.decodeAndEmit(body, M.HandshakeAck, (ack) => {
      if (!(ack.heartbeat_sec > 0) || !this.handshake) return;
      this.handshake = { ...this.handshake, heartbeatSec: ack.heartbeat_sec };
      if (this.opts.heartbeat !== false) this.heartbeat.start(ack.heartbeat_sec);
    });
  }

  private dispatchPush(msgId: number, body: Uint8Array): void {
    const list = this.pushHandlers.get(msgId);
    if (!list || list.length === 0) return;
    for (const h of [...list]) this.decodeAndEmit(body, h.type, h.fn);
  }

  private decodeAndEmit<T>(body: Uint8Array, type: MessageType<T>, fn: (msg: T) => void): void {
    let msg: T;
    try {
      msg = type.decode(body);
    } catch (err) {
      return this.reportError(err, `undecodable ${type.name} (${type.id})`);
    }
    try {
      fn(msg);
    } catch (err) {
      this.reportError(err, `handler of ${type.name}`);
    }
  }

  // ---- losing the connection ----------------------------------------------

  /** Closes the current connection ourselves; onTransportClose does the rest. */
  private drop(reason: string, conn: Conn | undefined): void {
    if (!conn || conn.ended) return;
    conn.closeReason ??= reason;
    conn.transport.close();
    // A transport that never opened does not call onClose.
    this.onTransportClose(conn, reason);
  }

  private onTransportClose(conn: Conn, transportReason: string): void {
    if (conn.ended) return;
    conn.ended = true;
    const reason = conn.closeReason ?? transportReason;
    if (this.conn === conn) this.conn = undefined;
    this.heartbeat.stop();
    this.pending.failAll(new ClientError('closed', `connection lost: ${reason}`));
    // While connecting, open() reports the failure; while recovering, the reconnect loop does.
    if (this.currentState !== 'open' || this.recovering) return;
    if (this.mayReconnect(conn.kick)) void this.reconnectLoop(reason);
    else this.finish(reason, conn.kick);
  }

  private mayReconnect(kick: Kick | undefined): boolean {
    const policy = this.opts.reconnect === undefined ? DEFAULT_RECONNECT : this.opts.reconnect;
    if (policy === false || policy.retries <= 0) return false;
    return !kick || (policy.kickCodes ?? DEFAULT_RECONNECT.kickCodes).includes(kick.code);
  }

  private async reconnectLoop(firstReason: string): Promise<void> {
    const policy = this.opts.reconnect || DEFAULT_RECONNECT;
    this.currentState = 'reconnecting';
    this.recovering = true;
    let reason = firstReason;
    let kick: Kick | undefined;
    try {
      for (let attempt = 1; attempt <= policy.retries; attempt++) {
        const delayMs = backoffDelay(attempt, policy);
        this.events.emit('reconnecting', { attempt, delayMs, reason });
        await this.backoff(delayMs);
        if (this.currentState !== 'reconnecting') return;
        try {
          const info = await this.open();
          if (this.state === 'closed') return; // close() ran between the handshake and here
          const conn = this.conn;
          this.currentState = 'open';
          await this.opts.onReconnect?.(this);
          if (!conn || conn.ended) throw new ClientError('closed', conn?.closeReason ?? 'connection lost during onReconnect');
          this.recovering = false;
          this.events.emit('reconnected', this.handshake ?? info);
          return;
        } catch (err) {
          if (this.state === 'closed') return; // close() was called meanwhile
          this.currentState = 'reconnecting';
          const conn = this.lastAttempt;
          kick = conn?.kick;
          reason = (err as Error).message;
          this.drop(`reconnect attempt failed: ${reason}`, conn);
          if (kick && !this.mayReconnect(kick)) return this.finish(reason, kick);
        }
      }
      this.finish(`gave up after ${policy.retries} reconnect attempts: ${reason}`, kick);
    } finally {
      this.recovering = false;
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeFromBackoff = wake;
    });
  }

  private finish(reason: string, kick?: Kick): void {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    this.heartbeat.stop();
    this.events.emit('close', kick ? { reason, kick } : { reason });
  }

  /** Closes for good: requests in flight fail with 'closed', no reconnect. */
  close(): void {
    if (this.currentState === 'idle' || this.currentState === 'closed') return;
    const wasConnecting = this.currentState === 'connecting';
    this.currentState = 'closed';
    this.wakeFromBackoff?.();
    this.wakeFromBackoff = undefined;
    this.drop('closed by the client', this.conn);
    this.heartbeat.stop();
    this.pending.failAll(new ClientError('closed', 'closed by the client'));
    // connect()'s promise reports a close during the first connect; events are for connections that were up.
    if (!wasConnecting) this.events.emit('close', { reason: 'closed by the client' });
  }
}

function kickedError(kick: Kick): ClientError {
  return new ClientError('kicked', `kicked by the agent (${kick.code}): ${kick.reason}`);
}

function decodeAnswer<T>(answer: Answer, type: MessageType<T>): T {
  if (answer.msgId === M.Error.id && type.id !== M.Error.id) {
    let err;
    try {
      err = M.Error.decode(answer.body);
    } catch {
      throw new ClientError('bad_response', 'undecodable Error answer');
    }
    throw new ClientError(err.code || 'application', err.message);
  }
  if (answer.msgId !== type.id) throw new ClientError('bad_response', `expected ${type.name} (${type.id}), got message ${answer.msgId}`);
  try {
    return type.decode(answer.body);
  } catch (err) {
    throw new ClientError('bad_response', `undecodable ${type.name}: ${(err as Error).message}`);
  }
}

/** Rejects with ClientError 'timeout' (after calling onTimeout) unless `p` settles first. */
function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(new ClientError('timeout', `no answer within ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
