import { EventEmitter } from 'node:events';
import { definedOnly } from '../net/options.js';
import { RpcError } from '../service/errors.js';
import type { ServiceNode } from '../service/node.js';
import type { Init } from '../service/rpc.js';
import type { MessageType } from '../wire/message-type.js';
import { Channels, type ChannelHandler, type DeliveryInfo, type RawChannelHandler, type Unsubscribe } from './channels.js';
import { channelProblem, HUB_DEFAULTS, throttled } from './limits.js';
import { H, PublishBytes } from './messages.js';
import { context, tracingOn } from '../observe/tracing.js';
import { hubClients } from './metrics.js';
import type { HubClientStats, HubEvents, PubSub } from './api.js';

/** Options of Hub, a service's link to the hub: the hub's service name, queue limits while it is away, size limits, timeouts. */
export interface HubOptions {
  /** The hub service's name in discovery (default "hub"). */
  service?: string;
  /** Publishes held while no hub instance can take them (default 1000); more are dropped. */
  maxQueued?: number;
  /** Bytes of publishes held (default 8 MiB). */
  maxQueuedBytes?: number;
  /** Longest channel name in UTF-8 bytes (default 256, as the hub). */
  maxChannelLength?: number;
  /** Largest body published (default 1 MiB, as the hub). */
  maxBody?: number;
  /** Deadline of subscribe and unsubscribe requests to a hub (default 5 s). */
  requestTimeoutMs?: number;
}

/** One connected hub instance. */
interface HubLink {
  readonly id: string;
  /** Rendezvous-hash weight of (this process, this hub): the largest wins the publishes. */
  readonly weight: number;
  /** Subscribe/Unsubscribe requests not yet answered. */
  pending: number;
  readonly retries: Set<NodeJS.Timeout>;
}

/** Channels per Subscribe request, so a full resend never nears the frame limit. */
const CHUNK = 1000;
const RETRY_MS = 500;

/**
 * Pub/sub through the hub service. `new Hub(node)` makes the node depend on
 * the hub, and subscribes it to its own name and id. Create it before or
 * after `node.start()`, once per node.
 *
 * - Every channel is subscribed at every hub instance, and sent again each
 *   time a link to one comes up: a restarted hub learns them all back.
 * - Each publish goes to one hub instance, picked by rendezvous hashing on
 *   this node's id, so one publisher's messages take one path and stay in
 *   order (while that instance stays up).
 * - Until the chosen hub has confirmed this node's subscriptions, publishes
 *   wait in a bounded queue: a node that subscribes and then publishes on
 *   the same channel receives its own message.
 */
export class Hub extends EventEmitter<HubEvents> implements PubSub {
  readonly node: ServiceNode;
  private readonly service: string;
  private readonly channels: Channels;
  private readonly hubs = new Map<string, HubLink>();
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private readonly counts = { published: 0, dropped: 0 };
  private readonly opts: Required<HubOptions>;
  private syncWaiters: Array<() => void> = [];
  private flushing = false;
  private readonly warnFull: () => void;

  constructor(node: ServiceNode, options: HubOptions = {}) {
    super();
    this.node = node;
    this.opts = {
      service: HUB_DEFAULTS.service,
      maxQueued: 1000,
      maxQueuedBytes: 8 * 1024 * 1024,
      maxChannelLength: HUB_DEFAULTS.maxChannelLength,
      maxBody: HUB_DEFAULTS.maxBody,
      requestTimeoutMs: 5000,
      ...definedOnly(options),
    };
    this.service = this.opts.service;
    this.channels = new Channels(node.log, [node.name, node.id]);
    this.warnFull = throttled(5000, (suppressed: number) =>
      node.log.warn({ queued: this.queue.length, suppressed }, 'hub publish queue full: no hub instance can take publishes; dropping them'),
    );
    node.addDependency(this.service);
    node.onMessage(H.Deliver, (msg, ctx) => {
      // Only the hub relays; anything else sending Deliver is confused.
      if (ctx.peer.name === this.service) this.channels.deliver(msg);
    });
    node.on('peerUp', (peer) => peer.name === this.service && this.hubUp(peer.id));
    node.on('peerDown', (peer) => peer.name === this.service && this.hubDown(peer.id));
    // Created after the node connected: the hub's peerUp has already passed.
    for (const peer of node.instances(this.service)) this.hubUp(peer.id);
    hubClients.add(this);
    node.once('stopping', () => hubClients.retire(this));
  }

  // ---- subscribing ----------------------------------------------------------

  /** Calls `handler` with every message published to `channel` as `type`; returns the way to stop. */
  subscribe<T>(channel: string, type: MessageType<T>, handler: ChannelHandler<T>): Unsubscribe {
    this.checkChannel(channel);
    return this.channels.add(channel, { kind: 'typed', type: type as MessageType<unknown>, fn: handler as ChannelHandler<unknown> }, (added) => this.control(added ? 'sub' : 'unsub', [channel]));
  }

  /** Like subscribe, for every message on the channel, undecoded. */
  subscribeRaw(channel: string, handler: RawChannelHandler): Unsubscribe {
    this.checkChannel(channel);
    return this.channels.add(channel, { kind: 'raw', fn: handler }, (added) => this.control(added ? 'sub' : 'unsub', [channel]));
  }

  /**
   * Handles messages of `type` published to this node's service name (all
   * its instances) or to its id (this instance only); `from.channel` says which.
   */
  onDirect<T>(type: MessageType<T>, handler: ChannelHandler<T>): this {
    this.channels.direct(type as MessageType<unknown>, handler as ChannelHandler<unknown>);
    return this;
  }

  /**
   * Resolves once at least one hub instance is connected and every
   * connected one has answered every subscription request sent so far (a
   * refusal is logged as an error).
   */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get synced(): boolean {
    if (this.hubs.size === 0) return false;
    for (const hub of this.hubs.values()) if (hub.pending > 0) return false;
    return true;
  }

  // ---- publishing -----------------------------------------------------------

  /**
   * Publishes `msg` to every subscriber of `channel` (a channel name, a
   * service name, or a service id). Returns false only when the message was
   * dropped because no hub could take it and the queue is full; otherwise it
   * is on its way or queued until a hub connects. Throws on a bad channel
   * name or an oversized body.
   */
  publish<T>(channel: string, type: MessageType<T>, msg: Init<T>): boolean {
    return this.publishRaw(channel, type.id, type.encode(msg));
  }

  /** Publishes an already encoded body with its message id. */
  publishRaw(channel: string, msgId: number, body: Uint8Array): boolean {
    this.checkChannel(channel);
    if (body.length > this.opts.maxBody) throw new RangeError(`hub: body of ${body.length} bytes is over the limit of ${this.opts.maxBody}`);
    if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0xffff) throw new RangeError(`hub: message id ${msgId} is not in 0..65535`);
    const bytes = H.Publish.encode({ channel, msg_id: msgId, body });
    if (this.queue.length === 0) {
      const hub = this.target();
      if (hub && hub.pending === 0 && this.node.sendToPeer(hub.id, PublishBytes, { bytes }, tracingOn() ? context.active() : undefined)) {
        this.counts.published++;
        return true;
      }
    }
    if (this.queue.length >= this.opts.maxQueued || this.queuedBytes + bytes.length > this.opts.maxQueuedBytes) {
      this.counts.dropped++;
      this.warnFull();
      return false;
    }
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    this.counts.published++;
    // The direct send may have failed on a link that just closed while another hub is ready.
    this.flush();
    return true;
  }

  stats(): HubClientStats {
    return { ...this.counts, queued: this.queue.length, received: this.channels.received };
  }

  /** The hub instance this node's publishes go to now. */
  private target(): HubLink | undefined {
    let best: HubLink | undefined;
    // instances() leaves out draining hubs, so publishing moves off one that is shutting down.
    for (const peer of this.node.instances(this.service)) {
      const hub = this.hubs.get(peer.id);
      if (hub && (!best || hub.weight > best.weight)) best = hub;
    }
    return best;
  }

  /** Sends queued publishes, in order, to the current target while it can take them. */
  private flush(): void {
    // Re-entered when a send closes a link (peerDown -> hubDown -> flush); the outer loop carries on.
    if (this.flushing) return;
    this.flushing = true;
    let sent = 0;
    try {
      for (let hub = this.target(); hub && hub.pending === 0 && sent < this.queue.length; ) {
        const bytes = this.queue[sent] as Uint8Array;
        if (this.node.sendToPeer(hub.id, PublishBytes, { bytes })) {
          this.queuedBytes -= bytes.length;
          sent++;
          continue;
        }
        // That link just closed, and the node no longer offers it: try the next pick.
        const next = this.target();
        if (next === hub) break;
        hub = next;
      }
    } finally {
      this.queue.splice(0, sent);
      this.flushing = false;
    }
  }

  // ---- hub links --------------------------------------------------------------

  private hubUp(id: string): void {
    this.hubDown(id);
    const hub: HubLink = { id, weight: fnv1a(`${this.node.id}\n${id}`), pending: 0, retries: new Set() };
    this.hubs.set(id, hub);
    this.send(hub, 'sub', this.channels.names());
    this.settled(hub);
  }

  private hubDown(id: string): void {
    const hub = this.hubs.get(id);
    if (!hub) return;
    for (const timer of hub.retries) clearTimeout(timer);
    this.hubs.delete(id);
    // Another instance may take the publishes now.
    this.flush();
  }

  /** A channel was added or removed locally: tell every connected hub. */
  private control(kind: 'sub' | 'unsub', channels: string[]): void {
    for (const hub of this.hubs.values()) this.send(hub, kind, channels);
  }

  private send(hub: HubLink, kind: 'sub' | 'unsub', channels: readonly string[], attempt = 0): void {
    const type = kind === 'sub' ? H.Subscribe : H.Unsubscribe;
    for (let i = 0; i < channels.length; i += CHUNK) {
      const chunk = channels.slice(i, i + CHUNK);
      hub.pending++;
      this.node.call({ id: hub.id }, type, H.Ok, { channels: chunk }, { timeoutMs: this.opts.requestTimeoutMs }).then(
        () => this.answered(hub),
        (err: Error) => {
          this.failed(hub, kind, chunk, err, attempt);
          this.answered(hub);
        },
      );
    }
  }

  private answered(hub: HubLink): void {
    hub.pending--;
    this.settled(hub);
  }

  /** After every answer: once a hub has nothing pending, it is in step with us. */
  private settled(hub: HubLink): void {
    // A request waiting to be retried means the hub is not in step yet.
    if (hub.pending > 0 || hub.retries.size > 0 || this.hubs.get(hub.id) !== hub) return;
    this.flush();
    this.emit('synced', hub.id);
    if (this.synced) for (const resolve of this.syncWaiters.splice(0)) resolve();
  }

  private failed(hub: HubLink, kind: 'sub' | 'unsub', channels: string[], err: Error, attempt: number): void {
    if (this.hubs.get(hub.id) !== hub) return; // the link went down: its peerUp sends everything again
    if (err instanceof RpcError && err.code === 'bad_request') {
      this.node.log.error({ hub: hub.id, channels: channels.slice(0, 5), count: channels.length, err: err.message }, 'the hub refused a subscription');
      return;
    }
    // The hub is up but did not answer (timeout, busy), or this node is still starting (links come up
    // before it takes calls): try again soon, with what still holds. Until then the hub is not in step.
    const delay = Math.min(RETRY_MS, 25 * 2 ** attempt);
    if (attempt >= 4) this.node.log.warn({ hub: hub.id, kind, err: err.message, attempt }, 'hub subscription request failed; retrying');
    hub.pending++;
    const timer = setTimeout(() => {
      hub.retries.delete(timer);
      if (this.hubs.get(hub.id) !== hub) return;
      hub.pending--;
      const still = channels.filter((c) => this.channels.has(c) === (kind === 'sub'));
      this.send(hub, kind, still, attempt + 1);
      this.settled(hub);
    }, delay);
    timer.unref();
    hub.retries.add(timer);
  }

  private checkChannel(channel: string): void {
    const why = channelProblem(channel, this.opts.maxChannelLength);
    if (why) throw new TypeError(`hub: ${why}`);
  }
}

/** FNV-1a, 32 bits: a stable, well-spread weight for rendezvous hashing. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}


export type { ChannelHandler, DeliveryInfo, HubClientStats, HubEvents, RawChannelHandler, Unsubscribe };
