import { MessageRegistry } from '../wire/registry.js';

export interface LinkChallenge { nonce: Uint8Array; protocol: number }
export interface LinkHello { id: string; name: string; addr: number; nonce: Uint8Array; proof: Uint8Array; protocol: number; load: number }
export interface LinkWelcome { id: string; name: string; addr: number; proof: Uint8Array; load: number }
export interface RpcErrorMsg { code: string; message: string }
export interface RpcCancel { reason: string }
export interface LoadReport { load: number }
export type Draining = Record<string, never>;
export interface TraceContextMsg { fields: Record<string, string> }

export const LINK_PROTOCOL = 1;

const registry = new MessageRegistry().load('gamemesh/link.proto');
const t = <T>(name: string) => registry.type<T>(`gamemesh.link.${name}`);

export const L = {
  LinkChallenge: t<LinkChallenge>('LinkChallenge'),
  LinkHello: t<LinkHello>('LinkHello'),
  LinkWelcome: t<LinkWelcome>('LinkWelcome'),
  RpcError: t<RpcErrorMsg>('RpcError'),
  RpcCancel: t<RpcCancel>('RpcCancel'),
  LoadReport: t<LoadReport>('LoadReport'),
  Draining: t<Draining>('Draining'),
  TraceContext: t<TraceContextMsg>('TraceContext'),
} as const;

export interface StreamOpen { window: number; meta: Record<string, string> }
export interface StreamAccept { window: number }
export interface StreamWindow { delta: number }
export interface StreamReset { code: string; message: string }

/** Stream frames (src/service/stream); `seq` carries the stream id. StreamData's body is raw bytes. */
export const S = {
  StreamOpen: t<StreamOpen>('StreamOpen'),
  StreamAccept: t<StreamAccept>('StreamAccept'),
  StreamData: t<Record<string, never>>('StreamData'),
  StreamWindow: t<StreamWindow>('StreamWindow'),
  StreamEnd: t<Record<string, never>>('StreamEnd'),
  StreamReset: t<StreamReset>('StreamReset'),
} as const;

export interface HarborDown { harbor: number }
export interface HarborPeerDown { addr: number }

/** Harbor frames (src/service/route.ts, src/harbor). HarborRoute's body is a raw route header and the inner body. */
export const H = {
  HarborRoute: t<Record<string, never>>('HarborRoute'),
  HarborDown: t<HarborDown>('HarborDown'),
  HarborPeerDown: t<HarborPeerDown>('HarborPeerDown'),
} as const;
