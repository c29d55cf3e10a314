/**
 * What the agent knows to speak pomelo: the `pomelo` section of routes.json
 * (written by `gamemesh gen`), which gives each message with an id its
 * pomelo route and carries the protobuf descriptor of those messages, so
 * JSON bodies can be converted without the game's code.
 */
import protobuf from 'protobufjs';
import { MAX_ROUTE_BYTES } from './message.js';

export interface PomeloMessageJSON {
  readonly msgId: number;
  /** Full protobuf name, e.g. "demo.EarnGoldReq". */
  readonly name: string;
  /** The `(gamemesh.pomelo)` option, else the full name. */
  readonly route: string;
}

export interface PomeloSchemaJSON {
  readonly messages: readonly PomeloMessageJSON[];
  /** protobufjs JSON descriptor of those messages and every type they use. */
  readonly descriptor: protobuf.INamespace;
}

export class PomeloSchemaError extends Error {
  override name = 'PomeloSchemaError';
}

/** Why a route string cannot be a pomelo route, or undefined if it can. */
export function routeProblem(route: unknown): string | undefined {
  if (typeof route !== 'string' || route.length === 0) return 'must be a non-empty string';
  if (Buffer.byteLength(route) > MAX_ROUTE_BYTES) return `is over ${MAX_ROUTE_BYTES} bytes of UTF-8 (the message layer's limit)`;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\s\u0000-\u001f\u007f]/.test(route)) return 'must not contain spaces or control characters';
  return undefined;
}

export interface PomeloMessage {
  readonly msgId: number;
  readonly name: string;
  readonly route: string;
  readonly type: protobuf.Type;
}

/** The parsed and checked pomelo section. */
export class PomeloSchema {
  private readonly byIdMap = new Map<number, PomeloMessage>();
  private readonly byRouteMap = new Map<string, PomeloMessage>();

  private constructor(readonly json: PomeloSchemaJSON) {
    let root: protobuf.Root;
    try {
      root = protobuf.Root.fromJSON(json.descriptor);
      root.resolveAll();
    } catch (err) {
      throw new PomeloSchemaError(`pomelo.descriptor is not a usable protobuf descriptor: ${(err as Error).message}`);
    }
    json.messages.forEach((m, i) => {
      const where = `pomelo.messages[${i}]`;
      if (typeof m !== 'object' || m === null) throw new PomeloSchemaError(`${where} is not an object`);
      if (!Number.isInteger(m.msgId) || m.msgId < 1 || m.msgId > 0xffff) throw new PomeloSchemaError(`${where}.msgId must be an integer in 1..65535`);
      const problem = routeProblem(m.route);
      if (problem) throw new PomeloSchemaError(`${where}.route ${problem}`);
      if (typeof m.name !== 'string') throw new PomeloSchemaError(`${where}.name must be a message name`);
      let type: protobuf.Type;
      try {
        type = root.lookupType(m.name);
      } catch {
        throw new PomeloSchemaError(`${where}: message ${m.name} is not in pomelo.descriptor`);
      }
      if (this.byIdMap.has(m.msgId)) throw new PomeloSchemaError(`${where}: message id ${m.msgId} appears twice`);
      const other = this.byRouteMap.get(m.route);
      if (other) throw new PomeloSchemaError(`${where}: route ${m.route} names both ${other.name} and ${m.name}`);
      const msg: PomeloMessage = { msgId: m.msgId, name: m.name, route: m.route, type };
      this.byIdMap.set(m.msgId, msg);
      this.byRouteMap.set(m.route, msg);
    });
  }

  static parse(input: unknown): PomeloSchema {
    if (typeof input !== 'object' || input === null) throw new PomeloSchemaError('pomelo must be an object');
    const { messages, descriptor } = input as Partial<PomeloSchemaJSON>;
    if (!Array.isArray(messages)) throw new PomeloSchemaError('pomelo has no "messages" array');
    if (typeof descriptor !== 'object' || descriptor === null) throw new PomeloSchemaError('pomelo has no "descriptor" object');
    return new PomeloSchema({ messages, descriptor });
  }

  byId(msgId: number): PomeloMessage | undefined {
    return this.byIdMap.get(msgId);
  }

  byRoute(route: string): PomeloMessage | undefined {
    return this.byRouteMap.get(route);
  }

  get messages(): IterableIterator<PomeloMessage> {
    return this.byIdMap.values();
  }
}
