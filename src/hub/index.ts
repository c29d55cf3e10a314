export { Hub, type HubOptions, type HubEvents, type HubClientStats } from './client.js';
export type { PubSub } from './api.js';
export { createHub } from './open.js';
export { NatsHub, type NatsHubOptions } from './nats/index.js';
export type { ChannelHandler, RawChannelHandler, DeliveryInfo, Unsubscribe } from './channels.js';
export { startHub, type HubServer, type HubServerOptions, type HubStats } from './server.js';
export { HUB_DEFAULTS } from './limits.js';
