/**
 * The echo example's messages (examples/echo/echo.proto) for benches and
 * their fixtures, loaded at run time like any service's.
 */
import { fileURLToPath } from 'node:url';
import { MessageRegistry } from '../src/wire/registry.js';

export interface EchoReq {
  text: string;
  n: number;
}
export interface EchoResp {
  text: string;
  n: number;
  server: string;
}

/** This file runs as dist/bench/echo-messages.js; the .proto stays in the source tree. */
const ECHO_PROTO = fileURLToPath(new URL('../../examples/echo/echo.proto', import.meta.url));
const registry = new MessageRegistry().load(ECHO_PROTO);
export const Req = registry.type<EchoReq>('echo.EchoReq');
export const Resp = registry.type<EchoResp>('echo.EchoResp');
