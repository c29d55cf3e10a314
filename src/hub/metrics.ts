/**
 * The hub's metrics: publishes, deliveries, channels and subscribers at the
 * hub, and what each publisher and subscriber process sends and receives.
 * Read from HubStats and HubClientStats at scrape time.
 */
import { counterFrom, gaugeFrom, Instances } from '../observe/metrics.js';
import type { HubClientStats } from './client.js';
import type { HubStats } from './server.js';

type HubCounters = Pick<HubStats, 'published' | 'delivered' | 'undeliverable' | 'refused'>;
type ClientCounters = Pick<HubClientStats, 'published' | 'dropped' | 'received'>;

export const hubServers = new Instances<{ stats(): HubStats }, HubCounters>(
  (h) => {
    const { published, delivered, undeliverable, refused } = h.stats();
    return { published, delivered, undeliverable, refused };
  },
  { published: 0, delivered: 0, undeliverable: 0, refused: 0 },
);

export const hubClients = new Instances<{ stats(): HubClientStats }, ClientCounters>(
  (h) => {
    const { published, dropped, received } = h.stats();
    return { published, dropped, received };
  },
  { published: 0, dropped: 0, received: 0 },
);

counterFrom('gamemesh_hub_messages_total', 'At the hub: publishes received, deliveries sent to subscribers, deliveries lost (subscriber link gone), publishes and subscriptions refused as bad input', ['result'], (set) => {
  const t = hubServers.totals();
  set({ result: 'published' }, t.published);
  set({ result: 'delivered' }, t.delivered);
  set({ result: 'undeliverable' }, t.undeliverable);
  set({ result: 'refused' }, t.refused);
});
gaugeFrom('gamemesh_hub_channels', 'At the hub: channels with at least one subscriber', [], (set) => {
  let n = 0;
  for (const h of hubServers.values()) n += h.stats().channels;
  set({}, n);
});
gaugeFrom('gamemesh_hub_subscribers', 'At the hub: subscribers holding at least one channel', [], (set) => {
  let n = 0;
  for (const h of hubServers.values()) n += h.stats().subscribers;
  set({}, n);
});
counterFrom('gamemesh_hub_client_messages_total', 'In publishers and subscribers: publishes sent or queued, publishes dropped (queue full, no hub), deliveries received', ['result'], (set) => {
  const t = hubClients.totals();
  set({ result: 'published' }, t.published);
  set({ result: 'dropped' }, t.dropped);
  set({ result: 'received' }, t.received);
});
gaugeFrom('gamemesh_hub_client_queued', 'Publishes waiting for a hub instance', [], (set) => {
  let n = 0;
  for (const h of hubClients.values()) n += h.stats().queued;
  set({}, n);
});
