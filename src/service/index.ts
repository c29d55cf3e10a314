export { ServiceNode, type ServiceNodeOptions, type ServiceNodeEvents, type NodeConfig, type Target, type CallOptions } from './node.js';
export { RpcError, ServiceError, type RpcErrorCode } from './errors.js';
export type { CallContext, ClientCall, ServerCall, ClientInterceptor, ServerInterceptor, PeerInfo, Init, RpcHandler, MessageHandler } from './rpc.js';
export type { Strategy } from './select.js';
export { serviceId, parseServiceId, packAddr, unpackAddr, formatAddr, parseAddr as parseLogicalAddr, type LogicalAddr } from './identity.js';
export { groupMatcher } from './link-rules.js';
