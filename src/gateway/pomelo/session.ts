/**
 * A pomelo client, presented to the agent as a Session that speaks gamemesh
 * frames: the agent's routing, rules, limits, bindings and pushes apply
 * unchanged, and backends never learn which protocol the client speaks.
 *
 *   client                      PomeloSession                  agent
 *   handshake {sys, user}  ->   frame Handshake (token = user.token)  ->
 *                          <-   handshake {code 200, sys}  <-  HandshakeAck
 *   handshake ack          ->   (starts the heartbeat: one heartbeat package)
 *   heartbeat              <->  answered here; any inbound byte feeds the agent's idle timeout
 *   request/notify route   ->   frame msgId (by route), seq = request id, protobuf body
 *                          <-   response {id} / push {route}  <-  msgId, seq, body
 *                          <-   kick {reason, code}  <-  Kick
 *
 * A request whose body the schema refuses is still charged to the agent's
 * rate limiter: it goes to the agent as a Ping with the request's seq, and
 * the agent's Pong (always sent at once, in the same call) becomes the
 * pomelo error response. A route no table names goes to the agent as
 * UNKNOWN_ROUTE_MSG_ID, which no route table can hold, so the agent's
 * policy for unknown messages (kick or drop) applies.
 */
import { BaseSession } from '../../net/base-session.js';
import { HEARTBEAT_MSG_ID, type SessionOptions } from '../../net/session.js';
import { C, CLIENT_PROTOCOL, type HandshakeAck } from '../messages.js';
import { BodyError, encodeJsonBody, protobufToJson } from './json.js';
import { decodeClientMessage, MessageKind, pushPackage, responsePackage } from './message.js';
import { encodePackage, PackageDecoder, PackageType, PomeloProtocolError, type PackageTypeValue } from './package.js';
import { decodePomeloProtobuf } from './protobuf.js';
import type { PomeloMessage } from './schema.js';
import type { PomeloTable } from './table.js';

/** Below FIRST_USER_MSG_ID, so no route table can route it. */
export const UNKNOWN_ROUTE_MSG_ID = 999;
/** pomelo's status codes in handshake answers and error responses. */
export const RES_OK = 200;
export const RES_FAIL = 500;
/** The push route of gamemesh's BackendStatus notice. */
export const BACKEND_STATUS_ROUTE = 'gamemesh.backendStatus';

/** What every session of one pomelo port shares. */
export interface PomeloPortState {
  /** The table in force now (replaced when the agent applies a new route table). */
  readonly table: PomeloTable;
  /** Offer pomelo-protobuf protos in the handshake. */
  readonly protobuf: boolean;
}

const EMPTY = Buffer.alloc(0);
const HEARTBEAT_PACKAGE = encodePackage(PackageType.HEARTBEAT);
/** Heartbeats answered at most this often: a client cannot make us write faster than this. */
const HEARTBEAT_REPLY_MIN_MS = 100;
const MAX_TOKEN = 4096;
const JSON_OPEN_BRACE = 0x7b;

type State = 'init' | 'agent' | 'ack' | 'working';

/** The push most recently encoded, for a broadcast: every client gets the same body object. */
let lastPush: { body: Uint8Array; msgId: number; table: PomeloTable; pkg: Buffer } | undefined;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

export abstract class PomeloSession extends BaseSession {
  protected readonly decoder: PackageDecoder;
  private state: State = 'init';
  /** The table of the handshake: its dictionary codes hold for the whole connection. */
  private table: PomeloTable;
  private clientDictVersion: unknown;
  private clientProtoVersion: unknown;
  private refusal: { seq: number; message: string } | undefined;
  private unknownRoute: string | undefined;
  private lastHeartbeatReply = 0;
  /** The idle window in force at the handshake: the heartbeat the client was told, which it cannot be told to change. */
  private idleFloorMs = 0;

  constructor(
    remoteAddress: string,
    options: SessionOptions,
    private readonly port: PomeloPortState,
  ) {
    super(remoteAddress, options);
    this.table = port.table;
    this.decoder = new PackageDecoder((type, body) => this.onPackage(type, body), this.opts.maxFrame);
  }

  /**
   * The agent shortens the idle window when the heartbeat period drops, and
   * tells native clients so; a pomelo client keeps the period of its
   * handshake, so its window never gets shorter than that one.
   */
  override setTimeouts(t: { idleTimeoutMs?: number; heartbeatMs?: number }): void {
    const idle = t.idleTimeoutMs;
    super.setTimeouts(idle !== undefined && idle > 0 && idle < this.idleFloorMs ? { ...t, idleTimeoutMs: this.idleFloorMs } : t);
  }

  /** Writes pomelo bytes as they are. */
  protected abstract writeRaw(bytes: Buffer): void;

  /** Transports call this with inbound bytes: a TCP chunk, or one WebSocket message. */
  protected onBytes(chunk: Buffer): void {
    if (this.closed) return;
    this.touch();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof PomeloProtocolError) this.close(`bad frame: ${err.message}`, err);
      else this.close(`frame handler failed: ${(err as Error).message}`, err as Error);
    }
  }

  private onPackage(type: PackageTypeValue, body: Buffer): void {
    // A handler may close the session while later packages of the same chunk are being decoded.
    if (this.closed) return;
    switch (type) {
      case PackageType.HANDSHAKE:
        if (this.state === 'init') this.onHandshake(body);
        return;
      case PackageType.HANDSHAKE_ACK:
        if (this.state !== 'ack') return;
        this.state = 'working';
        // The client answers each heartbeat after its interval: the first one starts the cycle.
        this.lastHeartbeatReply = Date.now();
        this.writeRaw(HEARTBEAT_PACKAGE);
        return;
      case PackageType.HEARTBEAT: {
        if (this.state !== 'working') return;
        const now = Date.now();
        if (now - this.lastHeartbeatReply < HEARTBEAT_REPLY_MIN_MS) return;
        this.lastHeartbeatReply = now;
        this.writeRaw(HEARTBEAT_PACKAGE);
        return;
      }
      case PackageType.DATA:
        // As pomelo does: data before the handshake ack is ignored.
        if (this.state === 'working') this.onData(body);
        return;
      case PackageType.KICK:
        throw new PomeloProtocolError('a client may not send kick packages');
    }
  }

  private onHandshake(body: Buffer): void {
    let hs: unknown;
    try {
      hs = JSON.parse(body.toString('utf8'));
    } catch {
      hs = undefined;
    }
    const sys = isObject(hs) ? hs['sys'] : undefined;
    if (!isObject(sys)) {
      this.writeRaw(encodePackage(PackageType.HANDSHAKE, Buffer.from(JSON.stringify({ code: RES_FAIL }))));
      this.close('bad pomelo handshake: expected JSON {"sys": {...}, "user": {...}}');
      return;
    }
    const user = (hs as Record<string, unknown>)['user'];
    const token = isObject(user) && typeof user['token'] === 'string' ? user['token'].slice(0, MAX_TOKEN) : '';
    const client = `pomelo ${String(sys['type'] ?? '?').slice(0, 40)}/${String(sys['version'] ?? '?').slice(0, 20)}`;
    this.clientDictVersion = sys['dictVersion'];
    this.clientProtoVersion = sys['protoVersion'];
    this.table = this.port.table;
    this.state = 'agent';
    // The agent answers with a HandshakeAck (or a Kick) within this call.
    this.deliver(C.Handshake.id, 1, asBuffer(C.Handshake.encode({ version: CLIENT_PROTOCOL, token, client })));
  }

  private finishHandshake(ack: HandshakeAck): void {
    // The agent set the window for this period just before its HandshakeAck.
    this.idleFloorMs = this.opts.idleTimeoutMs;
    const t = this.table;
    const sys: Record<string, unknown> = { heartbeat: ack.heartbeat_sec, useDict: true, dictVersion: t.dictVersion };
    if (this.clientDictVersion !== t.dictVersion) {
      sys['dict'] = t.dict;
      sys['routeToCode'] = t.dict;
      sys['codeToRoute'] = Object.fromEntries(t.codeToRoute);
    }
    if (this.port.protobuf) {
      sys['useProto'] = true;
      if (this.clientProtoVersion !== t.protos.version) sys['protos'] = t.protos;
    }
    this.state = 'ack';
    this.writeRaw(encodePackage(PackageType.HANDSHAKE, Buffer.from(JSON.stringify({ code: RES_OK, sys }))));
  }

  private onData(data: Buffer): void {
    const m = decodeClientMessage(data);
    const route = typeof m.route === 'number' ? this.table.codeToRoute.get(m.route) : m.route;
    const seq = m.kind === MessageKind.REQUEST ? m.id : 0;
    const live = this.port.table;
    const msg = route === undefined ? undefined : live.requests.get(route);
    if (!msg) {
      this.unknownRoute = route ?? `code ${m.route}`;
      this.deliver(UNKNOWN_ROUTE_MSG_ID, seq, EMPTY);
      this.unknownRoute = undefined;
      return;
    }
    let body: Uint8Array;
    try {
      body = this.toProtobuf(msg, this.port.protobuf && live.compact(msg.route), m.body);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      this.refusal = { seq, message: `${msg.route}: ${err.message}` };
      this.deliver(C.Ping.id, seq, EMPTY);
      this.refusal = undefined;
      return;
    }
    this.deliver(msg.msgId, seq, asBuffer(body));
  }

  private toProtobuf(msg: PomeloMessage, compact: boolean, body: Buffer): Uint8Array {
    if (body.length === 0) return encodeJsonBody(msg.type, {});
    // JSON bodies start with "{"; a pomelo-protobuf body never does (it would be field 15 with wire type 3).
    if (compact && body[0] !== JSON_OPEN_BRACE) return encodeJsonBody(msg.type, decodePomeloProtobuf(msg.type, body));
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new BodyError(`the body is not JSON: ${(err as Error).message}`);
    }
    return encodeJsonBody(msg.type, value);
  }

  // ---- agent -> client ------------------------------------------------------

  protected write(msgId: number, seq: number, body: Uint8Array): void {
    switch (msgId) {
      case HEARTBEAT_MSG_ID:
        return this.writeRaw(HEARTBEAT_PACKAGE);
      case C.HandshakeAck.id:
        // A later one (seq 0) announces a new period: pomelo has no way to say so; the idle window already follows.
        if (this.state === 'agent') this.finishHandshake(C.HandshakeAck.decode(body));
        return;
      case C.Pong.id:
        if (seq !== 0 && this.refusal?.seq === seq) this.respondError(seq, 'bad_request', this.refusal.message);
        return;
      case C.Kick.id: {
        const kick = C.Kick.decode(body);
        const reason = this.unknownRoute !== undefined ? `route ${this.unknownRoute} is not routed` : kick.reason;
        return this.writeRaw(encodePackage(PackageType.KICK, Buffer.from(JSON.stringify({ reason, code: kick.code }))));
      }
      case C.Error.id: {
        if (seq === 0) return;
        const e = C.Error.decode(body);
        return this.respondError(seq, e.code, e.message);
      }
      case C.BackendStatus.id: {
        const { service, id, up } = C.BackendStatus.decode(body);
        // Spelled out: a decoded message's own JSON leaves out `up: false`.
        return this.writeRaw(pushPackage(BACKEND_STATUS_ROUTE, JSON.stringify({ service, id, up: up === true })));
      }
    }
    if (seq !== 0) this.respond(msgId, seq, body);
    else this.push(msgId, body);
  }

  private respondError(seq: number, error: string, message: string): void {
    this.writeRaw(responsePackage(seq, JSON.stringify({ code: RES_FAIL, error, message })));
  }

  private respond(msgId: number, seq: number, body: Uint8Array): void {
    const msg = this.port.table.message(msgId);
    let json: string | undefined;
    if (msg) {
      try {
        json = protobufToJson(msg.type, body);
      } catch {
        json = undefined;
      }
    }
    if (json === undefined) return this.respondError(seq, 'internal', msg ? `the backend's ${msg.name} does not decode` : `message ${msgId} is not in the pomelo schema: regenerate routes.json with gamemesh gen`);
    this.writeRaw(responsePackage(seq, json));
  }

  private push(msgId: number, body: Uint8Array): void {
    const cached = lastPush;
    if (cached && cached.body === body && cached.msgId === msgId && cached.table === this.table) return this.writeRaw(cached.pkg);
    const msg = this.port.table.message(msgId);
    // A message the schema does not describe cannot be shown to a pomelo client.
    if (!msg) return;
    let json: string;
    try {
      json = protobufToJson(msg.type, body);
    } catch {
      return;
    }
    const pkg = pushPackage(this.table.routeToCode.get(msg.route) ?? msg.route, json);
    lastPush = { body, msgId, table: this.table, pkg };
    this.writeRaw(pkg);
  }
}
