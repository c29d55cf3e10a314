export { Harbor, type HarborOptions, type HarborCounts } from './harbor.js';
