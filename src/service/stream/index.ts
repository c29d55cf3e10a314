export { StreamHub, STREAM_DEFAULTS, type StreamOptions, type OpenStreamOptions, type StreamHandler } from './hub.js';
export { MeshStream, type StreamInfo } from './stream.js';
export { isStreamFrame } from './frames.js';
