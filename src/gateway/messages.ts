import { MessageRegistry } from '../wire/registry.js';

export interface Handshake { version: number; token: string; client: string }
export interface HandshakeAck { version: number; heartbeat_sec: number; session_id: string; server_time_ms: number }
export type Ping = Record<string, never>;
export interface Pong { server_time_ms: number }
export interface Kick { code: number; reason: string }
export interface ClientError { code: string; message: string }
export interface BackendStatus { service: string; id: string; up: boolean }

export interface ClientMessage { client_id: number; msg_id: number; seq: number; body: Uint8Array; session: Record<string, string> }
export interface ClientClosed { client_id: number; reason: string; session: Record<string, string> }
export interface ToClients { client_ids: number[]; all: boolean; msg_id: number; seq: number; body: Uint8Array }
export interface BindReq { client_id: number; session: Record<string, string> }
export interface BindResp { ok: boolean; error: string; code: string }
export interface KickClients { client_ids: number[]; code: number; reason: string }
export interface RestoredClient { client_id: number; session: Record<string, string> }
export interface RestoreClients { clients: RestoredClient[] }
export interface UnbindClients { client_ids: number[]; reason: string }
export interface GroupAdd { group: string; client_ids: number[] }
export interface GroupRemove { group: string; client_ids: number[]; drop: boolean }
export interface GroupSend { group: string; msg_id: number; body: Uint8Array; except_ids: number[] }

/** Version of the client protocol in docs/protocol.md. */
export const CLIENT_PROTOCOL = 1;

const registry = new MessageRegistry().load('gamemesh/client.proto', 'gamemesh/gateway.proto');
const c = <T>(name: string) => registry.type<T>(`gamemesh.client.${name}`);
const g = <T>(name: string) => registry.type<T>(`gamemesh.gateway.${name}`);

/** Client <-> agent. */
export const C = {
  Handshake: c<Handshake>('Handshake'),
  HandshakeAck: c<HandshakeAck>('HandshakeAck'),
  Ping: c<Ping>('Ping'),
  Pong: c<Pong>('Pong'),
  Kick: c<Kick>('Kick'),
  Error: c<ClientError>('Error'),
  BackendStatus: c<BackendStatus>('BackendStatus'),
} as const;

/** Agent <-> backend, on service links. */
export const G = {
  ClientMessage: g<ClientMessage>('ClientMessage'),
  ClientClosed: g<ClientClosed>('ClientClosed'),
  ToClients: g<ToClients>('ToClients'),
  BindReq: g<BindReq>('BindReq'),
  BindResp: g<BindResp>('BindResp'),
  KickClients: g<KickClients>('KickClients'),
  RestoreClients: g<RestoreClients>('RestoreClients'),
  UnbindClients: g<UnbindClients>('UnbindClients'),
  GroupAdd: g<GroupAdd>('GroupAdd'),
  GroupRemove: g<GroupRemove>('GroupRemove'),
  GroupSend: g<GroupSend>('GroupSend'),
} as const;
