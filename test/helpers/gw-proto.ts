/**
 * The gateway acceptance tests' messages (test/fixtures/proto-gw/gw.proto),
 * shared by test/gateway-process.test.ts and the gw-backend fixture process,
 * and the route tables the test pushes.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RouteRule, RouteTableJSON } from '../../src/gateway/routes.js';
import { MessageRegistry, type MessageType } from '../../src/wire/registry.js';

/** This file runs as dist/test/helpers/gw-proto.js; the .proto stays in the source tree. */
export const GW_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'proto-gw', 'gw.proto');

export interface LoginReq {
  user: string;
}
export interface LoginResp {
  user: string;
  server: string;
}
export interface SecretReq {
  text: string;
}
export interface SecretResp {
  user: string;
  text: string;
  server: string;
}
export interface EchoReq {
  text: string;
  n: number;
}
export interface EchoResp {
  text: string;
  n: number;
  server: string;
}
export interface PushReq {
  text: string;
  count: number;
  broadcast: boolean;
}
export interface Notice {
  text: string;
  n: number;
}
export interface FloodReq {
  size: number;
  total_bytes: number;
}
export interface Blob {
  data: Uint8Array;
}
export interface AdminReq {
  text: string;
}

const registry = new MessageRegistry().load(GW_PROTO);
const t = <T>(name: string): MessageType<T> => registry.type<T>(`gwtest.${name}`);

export const GW = {
  LoginReq: t<LoginReq>('LoginReq'),
  LoginResp: t<LoginResp>('LoginResp'),
  SecretReq: t<SecretReq>('SecretReq'),
  SecretResp: t<SecretResp>('SecretResp'),
  EchoReq: t<EchoReq>('EchoReq'),
  EchoResp: t<EchoResp>('EchoResp'),
  PushReq: t<PushReq>('PushReq'),
  Notice: t<Notice>('Notice'),
  FloodReq: t<FloodReq>('FloodReq'),
  Blob: t<Blob>('Blob'),
  AdminReq: t<AdminReq>('AdminReq'),
} as const;

/** A route table (the JSON `gamemesh routes push` takes) from [message, service, rule] rows. */
export function routeTable(rows: ReadonlyArray<readonly [Pick<MessageType<unknown>, 'id' | 'name'>, string, RouteRule]>): RouteTableJSON {
  return { version: 1, routes: rows.map(([type, service, rule]) => ({ msgId: type.id, name: type.name, service, rule })) };
}
