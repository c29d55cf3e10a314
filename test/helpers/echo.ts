/**
 * The echo example's message types (examples/echo/echo.proto), shared by the
 * service-runtime tests and the echo-service fixture process.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageRegistry } from '../../src/wire/registry.js';

/** This file runs as dist/test/helpers/echo.js; the .proto stays in the source tree. */
export const ECHO_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'echo', 'echo.proto');

export interface EchoReq {
  text: string;
  n: number;
}

export interface EchoResp {
  text: string;
  n: number;
  server: string;
}

const registry = new MessageRegistry().load(ECHO_PROTO);
export const EchoReq = registry.type<EchoReq>('echo.EchoReq');
export const EchoResp = registry.type<EchoResp>('echo.EchoResp');

/** `sleep:N` asks an echo handler to wait N ms before answering. */
export function sleepMs(text: string): number | undefined {
  const m = /^sleep:(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Resolves after ms, or rejects with the signal's reason when it aborts first. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
