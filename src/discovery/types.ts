/** One key with its value and the revisions that created and last changed it. */
export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  readonly createRev: number;
  readonly modRev: number;
}

/** One change under a watched prefix: a put (with the previous value) or a delete. */
export type KvEvent =
  | { readonly type: 'put'; readonly kv: KeyValue; readonly prev: KeyValue | undefined }
  | { readonly type: 'delete'; readonly key: string; readonly revision: number; readonly prev: KeyValue | undefined };

/** `modRev: 0` means the key must not exist. */
export interface Compare {
  readonly key: string;
  readonly modRev: number;
}

/** One write of a transaction. */
export type TxnOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array | string }
  | { readonly type: 'delete'; readonly key: string; readonly prefix?: boolean };

/** The outcome of a transaction: whether its compares held. */
export interface TxnResult {
  readonly succeeded: boolean;
  /** The transaction's revision when it succeeded, else the store's current one. */
  readonly revision: number;
}

/** One registered service instance: name, id, address and meta. */
export interface ServiceDesc {
  readonly name: string;
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly meta: Readonly<Record<string, string>>;
}

/** A service instance appeared, changed its meta, or went away. */
export type ServiceEvent = { readonly type: 'add' | 'update' | 'remove'; readonly desc: ServiceDesc };

/**
 * A live view of one prefix: a local cache kept current by the event stream,
 * and the events themselves, as a callback or an async iterator.
 */
export interface Watch extends AsyncIterable<KvEvent> {
  readonly prefix: string;
  /** Cached read; never touches the network. */
  get(key: string): KeyValue | undefined;
  /** Cached entries under the prefix, sorted by key. */
  list(): KeyValue[];
  stop(): void;
}

/** A live view of one service's instances: a local cache and its change events. */
export interface ServiceWatch extends AsyncIterable<ServiceEvent> {
  /** The cached instances, sorted by id. */
  list(): ServiceDesc[];
  get(id: string): ServiceDesc | undefined;
  stop(): void;
}

/** How watch events are delivered: a callback, an async iterator, or both. */
export interface WatchOptions<E> {
  /** Called for every event, in revision order. */
  onEvent?: (event: E) => void;
  /** Events held for an async iterator that is not being read; past it the iterator fails. */
  maxBuffered?: number;
}

/** Why a discovery request failed. */
export type DiscoveryErrorCode = 'unavailable' | 'unauthorized' | 'bad_request' | 'timeout' | 'too_large' | 'closed' | 'internal' | 'conflict';

/** A failed discovery request; `code` says why. */
export class DiscoveryError extends Error {
  override name = 'DiscoveryError';
  constructor(
    readonly code: DiscoveryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A registration refused because another registration holds its service id
 * or its logical address (code `conflict`). The message is the one line to
 * show, e.g. `logical address 1.2.0 is held by hub#0@dev (127.0.0.1:38761)`.
 */
export class RegistrationConflict extends DiscoveryError {
  override name = 'RegistrationConflict';
  constructor(
    message: string,
    /**
     * Set when the holder may be gone: its owner's connection dropped (the
     * built-in server's grace period) or its etcd lease is not known to be
     * kept alive. The claim expires within this many ms unless the holder
     * comes back. Undefined: the holder is live.
     */
    readonly retryAfterMs: number | undefined,
  ) {
    super('conflict', message);
  }
}

/** Key prefix under which the registry keeps one key per service instance. */
export const SERVICE_PREFIX = '_svc/';

/** Key prefix of the claims on service ids and logical addresses (claims.ts). */
export const CLAIM_PREFIX = '_claim/';

/** The KV key of a service instance's registration. */
export function serviceKey(name: string, id: string): string {
  return `${SERVICE_PREFIX}${name}/${id}`;
}

/**
 * The discovery backend contract: the built-in server's client and the etcd
 * backend both implement it, and one behaviour suite runs against both.
 */
export interface Discovery {
  readonly connected: boolean;
  get(key: string): Promise<KeyValue | undefined>;
  list(prefix: string): Promise<KeyValue[]>;
  /** Returns the write's revision. */
  put(key: string, value: Uint8Array | string): Promise<number>;
  /** Returns how many keys were deleted. */
  delete(key: string): Promise<number>;
  deletePrefix(prefix: string): Promise<number>;
  /** Deletes every key outside the service registry (registrations and their claims). */
  clear(): Promise<number>;
  txn(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<TxnResult>;
  /** Resolves once the prefix's snapshot is in the local cache. */
  watch(prefix: string, options?: WatchOptions<KvEvent>): Promise<Watch>;
  /** Cached read through any active watch covering the key. */
  cached(key: string): KeyValue | undefined;
  /** Registers a service bound to this client's session; re-registered after reconnects. */
  register(desc: ServiceDesc): Promise<void>;
  deregister(name: string, id: string): Promise<void>;
  /** All services, or one service name's instances. */
  watchServices(name?: string, options?: WatchOptions<ServiceEvent>): Promise<ServiceWatch>;
  listServices(name?: string): Promise<ServiceDesc[]>;
  close(): Promise<void>;
}
