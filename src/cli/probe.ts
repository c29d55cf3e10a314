/**
 * `gamemesh client --proto DIR` and `gamemesh bot --proto DIR`: the
 * terminal client and the load bots for any project's messages, read from
 * its .proto files at run time. Without --proto both commands are the
 * demo's (demo/client, demo/bots).
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { GameClient } from '../client/client.js';
import { login } from '../client/login.js';
import { wsTransportNode } from '../client-node/index.js';
import { tcpTransport } from '../client-node/tcp-transport.js';
import type { MessageType } from '../wire/message-type.js';
import { MessageRegistry } from '../wire/registry.js';
import { UsageError } from './args.js';

/** Every message with an id in the .proto files under `dir`. */
export function loadProtoDir(dir: string): MessageRegistry {
  const files: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (err) {
      throw new UsageError(`cannot read the proto folder ${d}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.proto')) files.push(path.resolve(d, e.name));
    }
  };
  walk(dir);
  if (files.length === 0) throw new UsageError(`no .proto files under ${dir}`);
  return new MessageRegistry().load(...files.sort());
}

/** The request type by full name, and its answer: `--expect`, else the name with Req turned into Resp. */
export function requestPair(reg: MessageRegistry, send: string, expect?: string): [MessageType<unknown>, MessageType<unknown>] {
  const type = (name: string, what: string) => {
    try {
      return reg.type<unknown>(name);
    } catch (err) {
      throw new UsageError(`${what}: ${(err as Error).message}`);
    }
  };
  const req = type(send, '--send');
  const answer = expect ?? (/Req$/.test(send) ? send.replace(/Req$/, 'Resp') : undefined);
  if (answer === undefined) throw new UsageError(`which message answers ${send}? pass --expect (a name ending in Req is answered by its Resp)`);
  return [req, type(answer, '--expect')];
}

/** The message body of `--json`, checked as JSON here so that a typo is one clear line. */
export function jsonBody(text: string | undefined): Record<string, unknown> {
  if (text === undefined || text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('--json must be a JSON object, e.g. {"text":"hi"}');
  return value as Record<string, unknown>;
}

export interface Player {
  readonly client: GameClient;
  readonly account: string;
}

/** Logs in and connects to the gateway login picked, with the token in the handshake. */
export async function connectPlayer(url: string, account: string, password: string, transport: 'ws' | 'tcp', reconnect = false): Promise<Player> {
  const answer = await login(url, account, password);
  const address = transport === 'ws' ? answer.agent.ws : answer.agent.tcp;
  if (!address) throw new Error(`the login answer has no ${transport} address for the agent`);
  const client = new GameClient({
    transport: () => {
      if (transport === 'ws') return wsTransportNode(address);
      const i = address.lastIndexOf(':');
      return tcpTransport(address.slice(0, i), Number(address.slice(i + 1)));
    },
    token: answer.token,
    clientName: 'gamemesh-cli',
    ...(reconnect ? {} : { reconnect: false as const }),
  });
  await client.connect();
  return { client, account: answer.account };
}

/** A decoded protobuf message as plain JSON: 64-bit numbers as numbers when they fit, bytes as base64. */
export function toJson(msg: unknown): string {
  return JSON.stringify(msg, (_key, value: unknown) => {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
    if (typeof value === 'object' && value !== null && 'low' in value && 'high' in value && 'unsigned' in value) return Number(String(value));
    return value;
  });
}
