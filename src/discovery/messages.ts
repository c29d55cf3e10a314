import { MessageRegistry } from '../wire/registry.js';

/** The TypeScript shapes of proto/gamemesh/discovery.proto (decoded form). */
export interface PbKeyValue {
  key: string;
  value: Uint8Array;
  create_rev: number;
  mod_rev: number;
}
export interface Challenge { nonce: Uint8Array; protocol: number }
export interface Hello { name: string; proof: Uint8Array; protocol: number; instance?: string }
export interface HelloAck { revision: number; server_id: string }
export interface ErrorMsg { code: string; message: string; retry_ms?: number }
export interface GetReq { key: string }
export interface GetResp { found: boolean; kv?: PbKeyValue | null; revision: number }
export interface ListReq { prefix: string }
export interface ListResp { kvs: PbKeyValue[]; revision: number; more: boolean }
export interface PutReq { key: string; value: Uint8Array }
export interface PutResp { revision: number }
export interface DeleteReq { key: string; prefix: boolean }
export interface DeleteResp { deleted: number; revision: number }
export interface PbCompare { key: string; mod_rev: number }
export interface PbTxnOp { key: string; value?: Uint8Array; delete?: boolean; prefix?: boolean }
export interface TxnReq { compares: PbCompare[]; ops: PbTxnOp[] }
export interface TxnResp { succeeded: boolean; revision: number }
export interface WatchReq { watch_id: number; prefix: string }
export interface WatchResp { watch_id: number; kvs: PbKeyValue[]; revision: number; more: boolean }
export interface CancelWatchReq { watch_id: number }
export const EVENT_PUT = 0;
export const EVENT_DELETE = 1;
export interface PbEvent { type: number; kv: PbKeyValue }
export interface WatchEvent { watch_id: number; events: PbEvent[] }
export interface PbServiceDesc { name: string; id: string; host: string; port: number; meta: Record<string, string> }
export interface RegisterReq { desc?: PbServiceDesc | null }
export interface DeregisterReq { name: string; id: string }
export interface OkResp { revision: number }
export interface Mutation { key: string; value?: Uint8Array; delete?: boolean; create_rev?: number }
export interface JournalEntry { revision: number; mutations: Mutation[] }
export interface SnapshotHeader { revision: number; count: number }

/** The watch id of the server's notices about a client's own registrations (real watches start at 1). */
export const REGISTRY_NOTICE = 0;

/** Protocol version carried in Challenge and Hello. */
export const DISCOVERY_PROTOCOL = 1;

const registry = new MessageRegistry().load('gamemesh/discovery.proto');
const t = <T>(name: string) => registry.type<T>(`gamemesh.discovery.${name}`);

export const M = {
  Challenge: t<Challenge>('Challenge'),
  Hello: t<Hello>('Hello'),
  HelloAck: t<HelloAck>('HelloAck'),
  Error: t<ErrorMsg>('Error'),
  GetReq: t<GetReq>('GetReq'),
  GetResp: t<GetResp>('GetResp'),
  ListReq: t<ListReq>('ListReq'),
  ListResp: t<ListResp>('ListResp'),
  PutReq: t<PutReq>('PutReq'),
  PutResp: t<PutResp>('PutResp'),
  DeleteReq: t<DeleteReq>('DeleteReq'),
  DeleteResp: t<DeleteResp>('DeleteResp'),
  TxnReq: t<TxnReq>('TxnReq'),
  TxnResp: t<TxnResp>('TxnResp'),
  WatchReq: t<WatchReq>('WatchReq'),
  WatchResp: t<WatchResp>('WatchResp'),
  CancelWatchReq: t<CancelWatchReq>('CancelWatchReq'),
  WatchEvent: t<WatchEvent>('WatchEvent'),
  RegisterReq: t<RegisterReq>('RegisterReq'),
  DeregisterReq: t<DeregisterReq>('DeregisterReq'),
  OkResp: t<OkResp>('OkResp'),
} as const;

export const JournalEntryCodec = registry.plain<JournalEntry>('gamemesh.discovery.JournalEntry');
export const SnapshotHeaderCodec = registry.plain<SnapshotHeader>('gamemesh.discovery.SnapshotHeader');
export const KeyValueCodec = registry.plain<PbKeyValue>('gamemesh.discovery.KeyValue');

export const discoveryRegistry = registry;
