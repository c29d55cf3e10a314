import type { MessageType } from '../wire/message-type.js';
import type { Init } from '../service/rpc.js';
import type { ServiceNode } from '../service/node.js';
import type { ChannelHandler, RawChannelHandler, Unsubscribe } from './channels.js';

/** What a hub client emits: `synced` once the hub (or NATS) holds every subscription of this process. */
export interface HubEvents {
  /** A hub instance (or the NATS server) has confirmed every subscription of this process since its link came up. */
  synced: [hubId: string];
}

/** A hub client's counters: published, dropped, queued, received. */
export interface HubClientStats {
  /** Publishes handed to a hub link or queued. */
  published: number;
  /** Publishes dropped because the queue was full. */
  dropped: number;
  /** Publishes waiting for a hub. */
  queued: number;
  /** Deliveries received. */
  received: number;
}

/**
 * What services use of the hub, whichever backend carries it: the hub
 * service (`Hub`) or NATS (`NatsHub`). `createHub` picks one from `--hub`.
 */
export interface PubSub {
  readonly node: ServiceNode;
  subscribe<T>(channel: string, type: MessageType<T>, handler: ChannelHandler<T>): Unsubscribe;
  subscribeRaw(channel: string, handler: RawChannelHandler): Unsubscribe;
  onDirect<T>(type: MessageType<T>, handler: ChannelHandler<T>): this;
  whenSynced(): Promise<void>;
  readonly synced: boolean;
  publish<T>(channel: string, type: MessageType<T>, msg: Init<T>): boolean;
  publishRaw(channel: string, msgId: number, body: Uint8Array): boolean;
  stats(): HubClientStats;
  on(event: 'synced', listener: (hubId: string) => void): this;
  once(event: 'synced', listener: (hubId: string) => void): this;
  off(event: 'synced', listener: (hubId: string) => void): this;
}
