export * from './frame.js';
export * from './message-type.js';
export * from './registry.js';
export * from './crc32.js';
