import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { MessageType } from './message-type.js';

export { asBytes, messageTypesFromJSON, type MessageType } from './message-type.js';

/** Ids below this are reserved for gamemesh's own protocols. */
export const FIRST_USER_MSG_ID = 1000;

/** Where gamemesh's own .proto files live (works from src/ and from dist/src/). */
export const GAMEMESH_PROTO_DIR = findProtoDir();

function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'proto');
    try {
      readFileSync(join(candidate, 'gamemesh', 'options.proto'));
      return candidate;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('gamemesh: cannot find the proto/ directory of the package');
}

/** A .proto message that cannot be registered: a bad or duplicate (gamemesh.id). */
export class RegistryError extends Error {
  override name = 'RegistryError';
}

/**
 * Loads .proto files and indexes every message that declares `(gamemesh.id)`.
 * Imports of gamemesh/options.proto and descriptor.proto are satisfied
 * leniently: protobufjs keeps custom options as plain values without them.
 */
export class MessageRegistry {
  readonly root = new protobuf.Root();
  private readonly byId = new Map<number, MessageType<unknown>>();
  private readonly byName = new Map<string, MessageType<unknown>>();

  constructor(private readonly includeDirs: readonly string[] = [GAMEMESH_PROTO_DIR]) {
    this.root.resolvePath = (origin, target) => {
      if (target.endsWith('google/protobuf/descriptor.proto') || target.endsWith('gamemesh/options.proto')) {
        return null as unknown as string;
      }
      if (isAbsolute(target)) return target;
      for (const dir of this.includeDirs) {
        const path = join(dir, target);
        try {
          readFileSync(path);
          return path;
        } catch {
          // try the next include dir
        }
      }
      return origin ? resolve(dirname(origin), target) : target;
    };
  }

  /** Loads proto files (paths relative to an include dir, or absolute). */
  load(...files: string[]): this {
    this.root.loadSync(files, { keepCase: true });
    this.root.resolveAll();
    this.index(this.root);
    return this;
  }

  private index(ns: protobuf.NamespaceBase): void {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) this.add(nested);
      if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) this.index(nested);
    }
  }

  private add(type: protobuf.Type): void {
    const name = type.fullName.replace(/^\./, '');
    if (this.byName.has(name)) return;
    const options = (type.options ?? {}) as Record<string, unknown>;
    const rawId = options['(gamemesh.id)'];
    if (rawId === undefined) return;
    const id = Number(rawId);
    if (!Number.isInteger(id) || id < 1 || id > 0xffff) {
      throw new RegistryError(`${name}: (gamemesh.id) must be an integer in 1..65535, got ${String(rawId)}`);
    }
    const other = this.byId.get(id);
    if (other) throw new RegistryError(`message id ${id} is used by both ${other.name} and ${name}`);
    const mt: MessageType<unknown> = {
      id,
      name,
      options,
      encode: (message) => type.encode(message as Record<string, unknown>).finish(),
      decode: (body) => type.decode(body),
    };
    this.byId.set(id, mt);
    this.byName.set(name, mt);
  }

  /** The message type by full name; the caller states its TypeScript shape. */
  type<T>(name: string): MessageType<T> {
    const mt = this.byName.get(name);
    if (!mt) throw new RegistryError(`unknown message ${name} (is it declared with (gamemesh.id)?)`);
    return mt as MessageType<T>;
  }

  /** A message without an id (nested or storage-only), for encode/decode. */
  plain<T>(name: string): Pick<MessageType<T>, 'encode' | 'decode' | 'name'> {
    const type = this.root.lookupType(name);
    return {
      name,
      encode: (message: Partial<T>) => type.encode(message as Record<string, unknown>).finish(),
      decode: (body: Uint8Array) => type.decode(body) as T,
    };
  }

  byIdOrUndefined(id: number): MessageType<unknown> | undefined {
    return this.byId.get(id);
  }

  get types(): Iterable<MessageType<unknown>> {
    return this.byId.values();
  }
}

