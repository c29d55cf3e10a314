export { NatsHub, type NatsHubOptions } from './hub.js';
export { hubAddrProblem, isNatsAddr, parseNatsAddr } from './url.js';
