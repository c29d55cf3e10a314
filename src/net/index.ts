export * from './session.js';
export * from './tcp.js';
export * from './ws.js';
export * from './kcp/index.js';
export * from './shared-frame.js';
