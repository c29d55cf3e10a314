import { RpcError } from '../service/errors.js';
import type { ServiceNode } from '../service/node.js';
import type { PeerInfo } from '../service/rpc.js';
import { asBytes } from '../wire/message-type.js';
import { channelProblem, HUB_DEFAULTS, throttled } from './limits.js';
import { DeliverBytes, H, type Publish } from './messages.js';
import { ATTR, context, trace, tracingOn } from '../observe/tracing.js';
import { hubServers } from './metrics.js';

/** Limits of the hub server. */
export interface HubServerOptions {
  /** Channels one subscriber may hold at once (default 10,000). */
  maxChannelsPerSubscriber?: number;
  /** Longest channel name in UTF-8 bytes (default 256). */
  maxChannelLength?: number;
  /** Largest body relayed; bigger publishes are dropped (default 1 MiB). */
  maxBody?: number;
}

/** The hub server's counters. */
export interface HubStats {
  /** Subscribers holding at least one channel. */
  subscribers: number;
  /** Channels with at least one subscriber. */
  channels: number;
  /** Publish messages received. */
  published: number;
  /** Deliver messages handed to subscriber links. */
  delivered: number;
  /** Deliveries lost because the subscriber's link was already gone. */
  undeliverable: number;
  /** Publishes and subscription requests refused as bad input. */
  refused: number;
}

/** A running hub server (`gamemesh hub`): its node and its counters. */
export interface HubServer {
  readonly node: ServiceNode;
  stats(): HubStats;
  /** Ids of the subscribers of a channel. */
  subscribersOf(channel: string): string[];
  /** The channels a subscriber holds. */
  channelsOf(subscriberId: string): string[];
}

/**
 * Makes `node` (a normal ServiceNode, by convention named "hub") relay
 * pub/sub messages; call it before or after `node.start()`. The hub keeps
 * channel -> subscriber ids in memory only: subscribers send their channels
 * again whenever their link to the hub comes up, so a restarted hub is
 * complete again as soon as they reconnect.
 *
 * Per-publisher order: a publisher's messages arrive in order on its one
 * link, are relayed synchronously as they arrive, and each subscriber's
 * link is an ordered stream, so every subscriber sees them in that order.
 */
export function startHub(node: ServiceNode, options: HubServerOptions = {}): HubServer {
  const maxChannels = options.maxChannelsPerSubscriber ?? HUB_DEFAULTS.maxChannelsPerSubscriber;
  const maxLength = options.maxChannelLength ?? HUB_DEFAULTS.maxChannelLength;
  const maxBody = options.maxBody ?? HUB_DEFAULTS.maxBody;
  const subscribers = new Map<string, Set<string>>();
  const byChannel = new Map<string, Set<string>>();
  const stats = { published: 0, delivered: 0, undeliverable: 0, refused: 0 };
  const warnRefused = throttled(1000, (suppressed: number, peer: string, why: string) =>
    node.log.warn({ publisher: peer, why, suppressed }, 'refused a publish'),
  );

  const refuse = (why: string): never => {
    stats.refused++;
    throw new RpcError('bad_request', why);
  };

  node.handle(H.Subscribe, H.Ok, (req, ctx) => {
    const mine = subscribers.get(ctx.peer.id) ?? new Set<string>();
    // All or nothing: check every name and the cap before adding any.
    const fresh = new Set<string>();
    for (const channel of req.channels) {
      const why = channelProblem(channel, maxLength);
      if (why) refuse(why);
      if (!mine.has(channel)) fresh.add(channel);
    }
    if (mine.size + fresh.size > maxChannels) refuse(`${ctx.peer.id} would hold ${mine.size + fresh.size} channels; the hub allows ${maxChannels} per subscriber`);
    for (const channel of fresh) {
      mine.add(channel);
      let set = byChannel.get(channel);
      if (!set) byChannel.set(channel, (set = new Set()));
      set.add(ctx.peer.id);
    }
    if (mine.size > 0) subscribers.set(ctx.peer.id, mine);
    return { channels: mine.size };
  });

  node.handle(H.Unsubscribe, H.Ok, (req, ctx) => {
    for (const channel of req.channels) drop(ctx.peer.id, channel);
    return { channels: subscribers.get(ctx.peer.id)?.size ?? 0 };
  });

  node.onMessage(H.Publish, (msg, ctx) => {
    // A one-way handler that throws would take the publisher's whole link
    // down with it (the link's frame loop closes on a throw), so never throw.
    try {
      relay(msg, ctx.peer);
    } catch (err) {
      node.log.error({ err, publisher: ctx.peer.id }, 'relaying a publish failed');
    }
  });

  // A subscriber whose link dropped sends all its channels again when it
  // reconnects; until then, relaying to it would only fail.
  node.on('peerDown', (peer) => {
    for (const channel of subscribers.get(peer.id) ?? []) drop(peer.id, channel);
  });

  function drop(subscriber: string, channel: string): void {
    const mine = subscribers.get(subscriber);
    if (!mine?.delete(channel)) return;
    if (mine.size === 0) subscribers.delete(subscriber);
    const set = byChannel.get(channel);
    set?.delete(subscriber);
    if (set?.size === 0) byChannel.delete(channel);
  }

  function relay(msg: Publish, publisher: PeerInfo): void {
    stats.published++;
    const body = asBytes(msg.body);
    const why = channelProblem(msg.channel, maxLength) ?? (body.length > maxBody ? `body of ${body.length} bytes is over the limit of ${maxBody}` : undefined);
    if (why) {
      stats.refused++;
      warnRefused(publisher.id, why);
      return;
    }
    const subs = byChannel.get(msg.channel);
    if (!subs) return;
    // Encoded once; every subscriber gets the same bytes.
    const bytes = H.Deliver.encode({ channel: msg.channel, msg_id: msg.msg_id, body, publisher: publisher.id });
    // Traced publishes (the publisher sent a TraceContext) carry the relay's span on to every delivery.
    const traced = tracingOn() ? context.active() : undefined;
    if (traced) trace.getSpan(traced)?.setAttribute(ATTR.channel, msg.channel);
    for (const id of subs) {
      if (node.sendToPeer(id, DeliverBytes, { bytes }, traced)) stats.delivered++;
      else stats.undeliverable++;
    }
  }

  const server: HubServer = {
    node,
    stats: () => ({ subscribers: subscribers.size, channels: byChannel.size, ...stats }),
    subscribersOf: (channel) => [...(byChannel.get(channel) ?? [])],
    channelsOf: (id) => [...(subscribers.get(id) ?? [])],
  };
  hubServers.add(server);
  node.once('stopping', () => hubServers.retire(server));
  return server;
}
