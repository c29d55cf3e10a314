import type { ServiceNode } from '../service/node.js';
import type { PubSub } from './api.js';
import { Hub, type HubOptions } from './client.js';
import { NatsHub, type NatsHubOptions } from './nats/hub.js';
import { isNatsAddr } from './nats/url.js';

/**
 * The hub client for this node's `--hub`: the hub service when it is empty,
 * NATS when it is `nats://...`. Services call this instead of `new Hub` so
 * that the backend is a deployment choice, not a code change.
 */
export function createHub(node: ServiceNode, options: HubOptions & NatsHubOptions = {}): PubSub {
  const url = options.url ?? node.config.hub ?? '';
  if (isNatsAddr(url)) return new NatsHub(node, { ...options, url });
  return new Hub(node, options);
}
