export { ServiceNode, type ServiceNodeOptions, type ServiceNodeEvents, type NodeConfig, type Target, type CallOptions } from './node.js';
export { RpcError, ServiceError, type RpcErrorCode } from './errors.js';
export type { CallContext, ClientCall, ServerCall, ClientInterceptor, ServerInterceptor, PeerInfo, Init, RpcHandler, MessageHandler } from './rpc.js';
export type { Strategy } from './select.js';
export { serviceId, parseServiceId, packAddr, unpackAddr, formatAddr, parseAddr as parseLogicalAddr, type LogicalAddr } from './identity.js';
export { groupMatcher } from './link-rules.js';
export { loadConfig, helpText, envName, ConfigError, STANDARD_FLAGS, ENV_PREFIX, type ServiceConfig, type FlagSpec, type FlagSpecs, type FlagValues, type FlagType, type LoadConfigOptions, type LoadedConfig } from './config.js';
export { CloudConfig, type CloudConfigOptions, type ChangeListener } from './cloud-config.js';
export { serviceMain, type ServiceMainOptions, type Stoppable } from './main.js';
