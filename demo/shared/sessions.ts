/**
 * Who is signed in, as one demo service (game or social) sees it. Identity
 * belongs to the connection: the first service a client signs in to binds
 * the login token's account as the session's uid, and the agent refuses any
 * later bind to another uid, so every service reads the same player from
 * `session.uid`. One connection per player: a sign-in through any service
 * kicks the player's other connection from every service (through the hub).
 * After a restart, the agents re-announce the connections bound here, and
 * the map is rebuilt from them.
 */
import { GatewayBackend, RpcError, SESSION_UID, type PubSub, type ClientContext, type ClientInfo, type ClientRef } from '../../src/index.js';
import { TokenError, verifyToken } from '../../src/login/index.js';
import { HubLogin } from '../gen/index.js';

/** Every game and social instance hears every sign-in here. */
const LOGINS = 'demo.logins';

const same = (a: ClientRef, b: ClientRef) => a.agent === b.agent && a.id === b.id;

interface Seat {
  readonly ref: ClientRef;
  /** When it signed in here (ms since the epoch). */
  readonly since: number;
}

export class PlayerSessions {
  /** Player (uid) -> the connection it plays on, for those signed in to this service. */
  private readonly seats = new Map<string, Seat>();

  constructor(
    private readonly backend: GatewayBackend,
    private readonly hub: PubSub,
    private readonly jwtKey: Promise<Uint8Array>,
    /** The refusal of a message from a connection not signed in here, e.g. "not in chat: send JoinChatReq first". */
    private readonly notSignedIn: string,
  ) {
    hub.subscribe(LOGINS, HubLogin, (msg) => this.signedInElsewhere(msg));
    backend.onClientRestored((client) => this.restore(client));
    backend.onClientClosed((client) => this.left(client));
  }

  get size(): number {
    return this.seats.size;
  }

  /** The connection a player is signed in on here. */
  find(uid: string): ClientRef | undefined {
    return this.seats.get(uid)?.ref;
  }

  connections(): ClientRef[] {
    return [...this.seats.values()].map((s) => s.ref);
  }

  names(): string[] {
    return [...this.seats.keys()].sort();
  }

  /** The player of this connection, once signed in to this service. */
  uidOf(client: ClientContext): string {
    const uid = client.session[SESSION_UID];
    if (!uid || !this.isHere(uid, client)) throw new RpcError('bad_request', this.notSignedIn);
    return uid;
  }

  /**
   * Checks the login token and signs the connection in as its account. A
   * connection already signed in as someone else (through any service) is
   * refused: it cannot become another player.
   */
  async signIn(client: ClientContext, token: string): Promise<string> {
    let uid: string;
    try {
      uid = (await verifyToken(token, await this.jwtKey)).sub;
    } catch (err) {
      throw new RpcError('bad_request', err instanceof TokenError ? `login again: ${err.message}` : 'invalid token');
    }
    const bound = client.session[SESSION_UID];
    if (bound !== undefined && bound !== uid) throw new RpcError('bad_request', `this connection is signed in as ${bound}; it cannot sign in as ${uid}`);
    // The agent refuses this too if another service bound another uid meanwhile.
    await client.bind({ [SESSION_UID]: uid });
    const ref = { agent: client.agent, id: client.id };
    const since = Date.now();
    this.take(uid, ref, since);
    this.hub.publish(LOGINS, HubLogin, { uid, agent: ref.agent, client_id: ref.id, time_ms: since });
    return uid;
  }

  private isHere(uid: string, client: ClientRef): boolean {
    const seat = this.seats.get(uid);
    return seat !== undefined && same(seat.ref, client);
  }

  private take(uid: string, ref: ClientRef, since: number): void {
    const previous = this.seats.get(uid);
    if (previous && !same(previous.ref, ref)) this.backend.kick([previous.ref], 'logged in from another client');
    this.seats.set(uid, { ref, since: previous && same(previous.ref, ref) ? previous.since : since });
    this.backend.node.setLoad(this.seats.size);
  }

  private signedInElsewhere(msg: HubLogin): void {
    const seat = this.seats.get(msg.uid);
    if (!seat || same(seat.ref, { agent: msg.agent, id: msg.client_id }) || msg.time_ms < seat.since) return;
    this.backend.kick([seat.ref], 'logged in from another client');
    this.seats.delete(msg.uid);
    this.backend.node.setLoad(this.seats.size);
  }

  /** A restarted instance learns its players back from the agents. */
  private restore(client: ClientInfo): void {
    const uid = client.session[SESSION_UID];
    // Bound here without a uid: there is nothing to restore the player from.
    if (!uid) throw new Error('the session has no uid');
    if (!this.isHere(uid, client)) this.seats.set(uid, { ref: { agent: client.agent, id: client.id }, since: 0 });
    this.backend.node.setLoad(this.seats.size);
  }

  private left(client: ClientInfo): void {
    const uid = client.session[SESSION_UID];
    if (uid && this.isHere(uid, client)) this.seats.delete(uid);
    this.backend.node.setLoad(this.seats.size);
  }
}
