export * from './wire/index.js';
export * from './net/index.js';
export * from './discovery/index.js';
export * from './log/index.js';
export * from './service/index.js';
export * from './gateway/index.js';
export * from './login/index.js';
export * from './hub/index.js';
