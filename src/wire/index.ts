export * from './frame.js';
export * from './registry.js';
export * from './crc32.js';
