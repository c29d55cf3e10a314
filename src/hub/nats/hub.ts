import { EventEmitter } from 'node:events';
import type { NatsConnection, Subscription } from 'nats';
import { definedOnly } from '../../net/options.js';
import type { ServiceNode } from '../../service/node.js';
import type { Init } from '../../service/rpc.js';
import type { MessageType } from '../../wire/message-type.js';
import type { HubClientStats, HubEvents, PubSub } from '../api.js';
import { Channels, type ChannelHandler, type RawChannelHandler, type Unsubscribe } from '../channels.js';
import { channelProblem, HUB_DEFAULTS, throttled } from '../limits.js';
import { hubClients } from '../metrics.js';
import { channelSubject, decodeEnvelope, encodeEnvelope, subjectPrefix } from './subjects.js';
import { parseNatsAddr } from './url.js';

/** Options of NatsHub, pub/sub through a NATS server: its address and auth, the subject prefix, queue and size limits. */
export interface NatsHubOptions {
  /** `nats://host:port[,host:port]` (default: the node's --hub). */
  url?: string;
  /** NATS auth: a token, or a user and password (default: --hubtoken, --hubuser, --hubpass). */
  token?: string;
  user?: string;
  pass?: string;
  /** Subject prefix (default `gamemesh.hub.<svcgroup>`). */
  prefix?: string;
  /** Publishes held while not connected to a NATS server (default 1000); more are dropped. */
  maxQueued?: number;
  /** Bytes of publishes held (default 8 MiB). */
  maxQueuedBytes?: number;
  maxChannelLength?: number;
  maxBody?: number;
  /** Between reconnect attempts to the servers (default 250 ms). */
  reconnectWaitMs?: number;
}

interface Queued {
  subject: string;
  data: Uint8Array;
}

/**
 * The hub's API on NATS (`--hub nats://...`): each channel is a subject,
 * each process one NATS connection, so no hub service runs.
 *
 * - NATS keeps one connection's messages in order to each subscriber, which
 *   is the hub's per-publisher order.
 * - The client reconnects by itself, to any server of the cluster, and
 *   subscribes again; `synced` fires each time the server has confirmed the
 *   subscriptions (a PING answered after them).
 * - While no server is connected, publishes wait in a bounded queue, as they
 *   do for the hub service.
 */
export class NatsHub extends EventEmitter<HubEvents> implements PubSub {
  readonly node: ServiceNode;
  private readonly channels: Channels;
  private readonly prefix: string;
  private readonly publisher: Uint8Array;
  private readonly opts: Required<Omit<NatsHubOptions, 'token' | 'user' | 'pass'>> & Pick<NatsHubOptions, 'token' | 'user' | 'pass'>;
  private nc: NatsConnection | undefined;
  private connected = false;
  private confirming = 0;
  private readonly subs = new Map<string, Subscription>();
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private readonly counts = { published: 0, dropped: 0 };
  private syncWaiters: Array<() => void> = [];
  private closed = false;
  private readonly warnFull: () => void;
  private readonly warnForeign: (subject: string) => void;

  constructor(node: ServiceNode, options: NatsHubOptions = {}) {
    super();
    this.node = node;
    const cfg = node.config;
    this.opts = {
      url: cfg.hub ?? '',
      prefix: subjectPrefix(cfg.svcgroup),
      maxQueued: 1000,
      maxQueuedBytes: 8 * 1024 * 1024,
      maxChannelLength: HUB_DEFAULTS.maxChannelLength,
      maxBody: HUB_DEFAULTS.maxBody,
      reconnectWaitMs: 250,
      token: cfg.hubtoken || undefined,
      user: cfg.hubuser || undefined,
      pass: cfg.hubpass || undefined,
      ...definedOnly(options),
    };
    this.prefix = this.opts.prefix;
    this.publisher = Buffer.from(node.id, 'utf8');
    this.channels = new Channels(node.log, [node.name, node.id]);
    this.warnFull = throttled(5000, (suppressed: number) =>
      node.log.warn({ queued: this.queue.length, suppressed }, 'hub publish queue full: not connected to NATS; dropping publishes'),
    );
    this.warnForeign = throttled(5000, (suppressed: number, subject: string) => node.log.warn({ subject, suppressed }, 'hub: dropped a NATS message that is not a hub envelope'));
    const { servers } = parseNatsAddr(this.opts.url);
    hubClients.add(this);
    node.onDrain(() => this.close());
    this.connect(servers).catch((err: Error) => node.log.error({ err: err.message }, 'hub: the NATS connection failed'));
  }

  // ---- subscribing ----------------------------------------------------------

  subscribe<T>(channel: string, type: MessageType<T>, handler: ChannelHandler<T>): Unsubscribe {
    this.checkChannel(channel);
    return this.channels.add(channel, { kind: 'typed', type: type as MessageType<unknown>, fn: handler as ChannelHandler<unknown> }, (added) => this.changed(channel, added));
  }

  subscribeRaw(channel: string, handler: RawChannelHandler): Unsubscribe {
    this.checkChannel(channel);
    return this.channels.add(channel, { kind: 'raw', fn: handler }, (added) => this.changed(channel, added));
  }

  onDirect<T>(type: MessageType<T>, handler: ChannelHandler<T>): this {
    this.channels.direct(type as MessageType<unknown>, handler as ChannelHandler<unknown>);
    return this;
  }

  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get synced(): boolean {
    return this.connected && this.confirming === 0;
  }

  // ---- publishing -----------------------------------------------------------

  publish<T>(channel: string, type: MessageType<T>, msg: Init<T>): boolean {
    return this.publishRaw(channel, type.id, type.encode(msg));
  }

  publishRaw(channel: string, msgId: number, body: Uint8Array): boolean {
    this.checkChannel(channel);
    if (body.length > this.opts.maxBody) throw new RangeError(`hub: body of ${body.length} bytes is over the limit of ${this.opts.maxBody}`);
    if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0xffff) throw new RangeError(`hub: message id ${msgId} is not in 0..65535`);
    const data = encodeEnvelope(msgId, this.publisher, body);
    const max = this.nc?.info?.max_payload;
    if (max !== undefined && data.length > max) throw new RangeError(`hub: ${data.length} bytes with the envelope is over the NATS server's max_payload of ${max}`);
    const subject = channelSubject(this.prefix, channel);
    if (this.queue.length === 0 && this.connected && this.nc) {
      this.nc.publish(subject, data);
      this.counts.published++;
      return true;
    }
    if (this.queue.length >= this.opts.maxQueued || this.queuedBytes + data.length > this.opts.maxQueuedBytes) {
      this.counts.dropped++;
      this.warnFull();
      return false;
    }
    this.queue.push({ subject, data });
    this.queuedBytes += data.length;
    this.counts.published++;
    return true;
  }

  stats(): HubClientStats {
    return { ...this.counts, queued: this.queue.length, received: this.channels.received };
  }

  // ---- the connection -------------------------------------------------------

  private async connect(servers: string[]): Promise<void> {
    const { connect, Events } = await import('nats');
    // Our own loop for the first connection, so a node that stops while no server answers stops retrying too.
    let nc: NatsConnection | undefined;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        nc = await connect({
          servers,
          name: this.node.id,
          token: this.opts.token,
          user: this.opts.user,
          pass: this.opts.pass,
          // Once connected, never give up: a game cluster outlives any one NATS server.
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.opts.reconnectWaitMs,
          reconnectJitter: 100,
          timeout: 5000,
          // A server that vanished without a FIN (host down, partition) is noticed in about 10 s.
          pingInterval: 5000,
          maxPingOut: 2,
        });
        break;
      } catch (err) {
        if (attempt % 40 === 0) this.node.log.warn({ servers, err: (err as Error).message, attempt }, 'hub: cannot connect to NATS yet; publishes are queued, retrying');
        await new Promise((r) => setTimeout(r, this.opts.reconnectWaitMs));
      }
    }
    if (!nc) return;
    if (this.closed) {
      await nc.close();
      return;
    }
    this.nc = nc;
    this.node.log.info({ server: nc.getServer(), prefix: this.prefix }, 'hub: connected to NATS');
    for (const channel of this.channels.names()) this.natsSubscribe(channel);
    this.up();
    void nc.closed().then((err) => {
      this.connected = false;
      if (err && !this.closed) this.node.log.error({ err: err.message }, 'hub: the NATS connection closed');
    });
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) {
        this.connected = false;
        this.node.log.warn({ server: String(s.data) }, 'hub: disconnected from NATS; publishes are queued');
      } else if (s.type === Events.Reconnect) {
        // The client has sent every subscription again.
        this.node.log.info({ server: String(s.data) }, 'hub: reconnected to NATS');
        this.up();
      } else if (s.type === Events.Error) {
        this.node.log.warn({ err: String(s.data) }, 'hub: NATS error');
      }
    }
  }

  /** Connected (again): send what waited, and confirm the subscriptions. */
  private up(): void {
    const nc = this.nc;
    if (!nc || this.closed) return;
    this.connected = true;
    const queue = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const q of queue) nc.publish(q.subject, q.data);
    this.confirm();
  }

  /** A PING after the subscriptions: its PONG means the server has them all. */
  private confirm(): void {
    const nc = this.nc;
    if (!nc) return;
    this.confirming++;
    nc.flush().then(
      () => this.confirmed(nc),
      (err: Error) => {
        this.node.log.debug({ err: err.message }, 'hub: NATS flush failed; the reconnect confirms again');
        this.confirmed(nc);
      },
    );
  }

  private confirmed(nc: NatsConnection): void {
    this.confirming--;
    if (!this.synced) return;
    this.emit('synced', nc.info?.server_id ?? nc.getServer());
    for (const resolve of this.syncWaiters.splice(0)) resolve();
  }

  private changed(channel: string, added: boolean): void {
    if (!this.nc) return; // subscribed on connect
    if (added) this.natsSubscribe(channel);
    else {
      this.subs.get(channel)?.unsubscribe();
      this.subs.delete(channel);
    }
    if (this.connected) this.confirm();
  }

  private natsSubscribe(channel: string): void {
    const nc = this.nc as NatsConnection;
    const subject = channelSubject(this.prefix, channel);
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const env = decodeEnvelope(msg.data);
        if (!env) return this.warnForeign(msg.subject);
        this.channels.deliver({ channel, msg_id: env.msgId, body: env.body, publisher: env.publisher });
      },
    });
    this.subs.set(channel, sub);
  }

  /** On the node's stop: send what is buffered, then close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    hubClients.retire(this);
    const nc = this.nc;
    if (!nc) return;
    const wasConnected = this.connected;
    this.connected = false;
    if (nc.isClosed()) return;
    // Drain sends what is buffered, but only a connected client can; a reconnecting one is closed at once
    // (which also ends its reconnect loop), and a drain that takes too long is cut short.
    if (wasConnected) {
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        nc.drain().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
      ]);
      clearTimeout(timer);
      if (drained) return;
    }
    await nc.close().catch(() => {});
  }

  private checkChannel(channel: string): void {
    const why = channelProblem(channel, this.opts.maxChannelLength);
    if (why) throw new TypeError(`hub: ${why}`);
  }
}
