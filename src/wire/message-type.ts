import protobuf from 'protobufjs';

// Browser-safe: no Node modules here, so the client SDK and generated
// message code can run in a page.

// 64-bit fields decode to plain numbers: revisions and ids stay far below 2^53,
// and Long objects would leak into every API.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

/** A protobuf message type bound to its stable numeric id. */
export interface MessageType<T> {
  readonly id: number;
  readonly name: string;
  /** Missing fields encode as their proto3 defaults. */
  encode(message: Partial<T>): Uint8Array;
  decode(body: Uint8Array): T;
  /** The options declared on the message, such as `(gamemesh.route)`. */
  readonly options: Readonly<Record<string, unknown>>;
}

const EMPTY = new Uint8Array(0);

/**
 * protobufjs decodes an absent `bytes` field as its default, a plain `[]`;
 * everything downstream expects a Uint8Array.
 */
export function asBytes(value: Uint8Array | readonly number[] | null | undefined): Uint8Array {
  return value instanceof Uint8Array ? value : value && value.length > 0 ? Uint8Array.from(value) : EMPTY;
}

/**
 * For generated code: message types from a protobufjs JSON descriptor, with
 * the ids the generator assigned. No .proto parsing at run time.
 */
export function messageTypesFromJSON(json: protobuf.INamespace): <T>(fullName: string, id: number) => MessageType<T> {
  const root = protobuf.Root.fromJSON(json);
  return <T>(fullName: string, id: number): MessageType<T> => {
    const type = root.lookupType(fullName);
    return {
      id,
      name: fullName,
      options: (type.options ?? {}) as Record<string, unknown>,
      encode: (message: Partial<T>) => type.encode(message as Record<string, unknown>).finish(),
      decode: (body: Uint8Array) => type.decode(body) as T,
    };
  };
}
