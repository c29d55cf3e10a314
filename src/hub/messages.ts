import type { MessageType } from '../wire/message-type.js';
import { MessageRegistry } from '../wire/registry.js';

export interface Subscribe { channels: string[] }
export interface Unsubscribe { channels: string[] }
export interface Ok { channels: number }
export interface Publish { channel: string; msg_id: number; body: Uint8Array }
export interface Deliver { channel: string; msg_id: number; body: Uint8Array; publisher: string }

const registry = new MessageRegistry().load('gamemesh/hub.proto');
const h = <T>(name: string) => registry.type<T>(`gamemesh.hub.${name}`);

/** The hub protocol, on service links (proto/gamemesh/hub.proto). */
export const H = {
  Subscribe: h<Subscribe>('Subscribe'),
  Unsubscribe: h<Unsubscribe>('Unsubscribe'),
  Ok: h<Ok>('Ok'),
  Publish: h<Publish>('Publish'),
  Deliver: h<Deliver>('Deliver'),
} as const;

/** A message already encoded once, sent as is (to many subscribers, or from a queue). */
export interface Encoded {
  bytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/**
 * The same wire id as `type`, but the value is the encoded body: lets
 * `ServiceNode.sendToPeer` send one encoding to every subscriber instead of
 * encoding the message again for each.
 */
export function preEncoded(type: MessageType<unknown>): MessageType<Encoded> {
  return { id: type.id, name: type.name, options: type.options, encode: (m) => m.bytes ?? EMPTY, decode: (bytes) => ({ bytes }) };
}

export const DeliverBytes = preEncoded(H.Deliver);
export const PublishBytes = preEncoded(H.Publish);
