export { Agent, type AgentOptions, type AgentStats, type BackendGonePolicy } from './agent.js';
export { GatewayBackend, type ClientContext, type ClientRef, type ClientInfo, type ClientHandler, type ClientHandlerOptions, type GatewayBackendOptions } from './backend.js';
export { Group, Groups, type BroadcastOptions, type GroupMember, type GroupOptions, type MemberLostReason } from './groups.js';
export { SESSION_UID } from './identity.js';
export { RouteTable, RouteTableError, ROUTES_KEY, HEARTBEAT_KEY, type Route, type RouteRule, type RouteTableJSON } from './routes.js';
export { KickCode, type KickCodeValue } from './kick.js';
export { CLIENT_PROTOCOL } from './messages.js';
