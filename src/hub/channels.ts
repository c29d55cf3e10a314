import type { Logger } from '../log/index.js';
import type { MessageType } from '../wire/message-type.js';
import { asBytes } from '../wire/message-type.js';
import { throttled } from './limits.js';
import type { Deliver } from './messages.js';

/** Where a delivered message came from. */
export interface DeliveryInfo {
  /** The channel it was published to (for direct messages: this node's name or id). */
  readonly channel: string;
  /** Service id of the publisher (name#index@group). */
  readonly publisher: string;
  /** The message type id of the body. */
  readonly msgId: number;
}

/** Receives one channel's decoded messages, with who published them. */
export type ChannelHandler<T> = (msg: T, from: DeliveryInfo) => void | Promise<void>;
/** Receives one channel's messages undecoded: message id and body. */
export type RawChannelHandler = (msgId: number, body: Uint8Array, from: DeliveryInfo) => void | Promise<void>;
/** Stops one subscription; calling it again does nothing. */
export type Unsubscribe = () => void;

export type Entry =
  | { readonly kind: 'typed'; readonly type: MessageType<unknown>; readonly fn: ChannelHandler<unknown> }
  | { readonly kind: 'raw'; readonly fn: RawChannelHandler }
  /** This node's own name and id: dispatched by message id to onDirect handlers. */
  | { readonly kind: 'direct' };

interface DirectEntry {
  readonly type: MessageType<unknown>;
  readonly fn: ChannelHandler<unknown>;
}

/**
 * This process's side of the subscriptions: channel -> handlers, and the
 * dispatch of each delivery to them. A handler that throws or rejects is
 * logged and never disturbs the others or the link.
 */
export class Channels {
  private readonly byName = new Map<string, Set<Entry>>();
  private readonly directs = new Map<number, DirectEntry>();
  received = 0;
  private readonly warnType: (channel: string, msgId: number, expected: string) => void;
  private readonly warnDecode: (channel: string, type: string, err: string) => void;

  constructor(
    private readonly log: Logger,
    own: readonly string[],
  ) {
    for (const channel of own) this.byName.set(channel, new Set<Entry>([{ kind: 'direct' }]));
    this.warnType = throttled(5000, (suppressed: number, channel: string, msgId: number, expected: string) =>
      log.warn({ channel, msgId, expected, suppressed }, 'hub: a message on this channel is not of the type subscribed; that handler skipped it'),
    );
    this.warnDecode = throttled(5000, (suppressed: number, channel: string, type: string, err: string) =>
      log.warn({ channel, type, err, suppressed }, 'hub: dropped an undecodable message'),
    );
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(channel: string): boolean {
    return this.byName.has(channel);
  }

  /** Adds a handler; `changed(true)` when the channel is new here, `changed(false)` when its last handler goes. */
  add(channel: string, entry: Entry, changed: (added: boolean) => void): Unsubscribe {
    let set = this.byName.get(channel);
    if (!set) {
      this.byName.set(channel, (set = new Set()));
      changed(true);
    }
    set.add(entry);
    const mine = set;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      mine.delete(entry);
      if (mine.size === 0 && this.byName.get(channel) === mine) {
        this.byName.delete(channel);
        changed(false);
      }
    };
  }

  direct(type: MessageType<unknown>, fn: ChannelHandler<unknown>): void {
    if (this.directs.has(type.id)) throw new TypeError(`hub: a direct handler for message ${type.id} (${type.name}) is already registered`);
    this.directs.set(type.id, { type, fn });
  }

  deliver(msg: Deliver): void {
    this.received++;
    // Absent when unsubscribed here while the hub had not heard of it yet.
    const entries = this.byName.get(msg.channel);
    if (!entries) return;
    const body = asBytes(msg.body);
    const from: DeliveryInfo = { channel: msg.channel, publisher: msg.publisher, msgId: msg.msg_id };
    for (const e of entries) {
      if (e.kind === 'raw') {
        this.run(msg.channel, () => e.fn(msg.msg_id, body, from));
      } else if (e.kind === 'typed') {
        if (e.type.id === msg.msg_id) this.decodeAndRun(e.type, e.fn, body, from);
        else this.warnType(msg.channel, msg.msg_id, `${e.type.name} (${e.type.id})`);
      } else {
        const d = this.directs.get(msg.msg_id);
        if (d) this.decodeAndRun(d.type, d.fn, body, from);
        else this.log.debug({ channel: msg.channel, msgId: msg.msg_id, publisher: msg.publisher }, 'hub: no direct handler for this message');
      }
    }
  }

  private decodeAndRun(type: MessageType<unknown>, fn: ChannelHandler<unknown>, body: Uint8Array, from: DeliveryInfo): void {
    let msg: unknown;
    try {
      msg = type.decode(body);
    } catch (err) {
      this.warnDecode(from.channel, type.name, (err as Error).message);
      return;
    }
    this.run(from.channel, () => fn(msg, from));
  }

  private run(channel: string, fn: () => void | Promise<void>): void {
    const fail = (err: unknown) => this.log.error({ err, channel }, 'hub: a subscriber handler failed');
    try {
      const result = fn();
      if (result && typeof result.then === 'function') result.then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  }
}
