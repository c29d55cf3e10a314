export * from './types.js';
export * from './values.js';
export { DiscoveryClient, parseAddr, type DiscoveryClientOptions, type DiscoveryClientEvents } from './client.js';
export { DiscoveryServer, type DiscoveryServerOptions } from './server.js';
export { encodeServiceDesc, decodeServiceDesc, validateServiceDesc } from './service-desc.js';
export { EtcdDiscovery, type EtcdDiscoveryOptions, type EtcdTlsOptions } from './etcd.js';
export {
  connectDiscovery,
  etcdOptionsFromEnv,
  isEtcdAddr,
  parseEtcdAddr,
  type ConnectDiscoveryOptions,
  type DiscoveryConnection,
  type DiscoveryEvents,
  type EtcdAddr,
} from './connect.js';
export { clearServices, type Claim } from './claims.js';
export { admission, admitted, replacedOnly, newestVersions, versionOf, isRetiring, ADMIT, RETIRING, type Admission, type AdmissionContext, type AdmissionRecord } from './admission.js';
export { DEFAULT_NODE_STATE, NODE_STATE_PREFIX, nodeStateKey, parseNodeState, updateNodeState, type NodeState } from './node-state.js';
export { isSecretKey } from './secrets.js';
export * from './memory.js';
