/**
 * cellmesh's "cloud config": settings kept in the discovery KV under a prefix,
 * read from a watched local cache and changed live by operators
 * (`gamemesh sd setvalue config/agent/heartbeat_sec 5`).
 */
import type { Discovery, KeyValue, KvEvent, Watch } from '../discovery/types.js';
import { asString } from '../discovery/values.js';
import { createLogger, type Logger } from '../log/index.js';

/** Options of CloudConfig: the key prefix, whether to write defaults, the logger. */
export interface CloudConfigOptions {
  /** Keys are read under this prefix: `cfg.int('agent/x', 1)` reads `config/agent/x`. Default 'config/'. */
  prefix?: string;
  /** Write the default of a missing key back to the KV so operators can see and edit it. Default true. */
  writeDefaults?: boolean;
  logger?: Logger;
}

/** Turns stored text into a value, or undefined when the text is not one. */
type Parse<T> = (text: string) => T | undefined;

/** Called with a config key's new value (undefined when it was deleted). */
export type ChangeListener = (value: string | undefined) => void;

/** Live configuration from the KV (config/...): cached values, typed reads and change callbacks. */
export class CloudConfig {
  private readonly listeners = new Map<string, Set<ChangeListener>>();
  private readonly written = new Set<string>();
  /** The last bad text warned about per key, so a getter in a loop warns once. */
  private readonly warned = new Map<string, string>();
  private watch: Watch | undefined;
  private closed = false;

  private constructor(
    private readonly discovery: Discovery,
    readonly prefix: string,
    private readonly writeDefaults: boolean,
    private readonly log: Logger,
  ) {}

  /** Resolves once the prefix's current values are cached. */
  static async open(discovery: Discovery, options: CloudConfigOptions = {}): Promise<CloudConfig> {
    const cfg = new CloudConfig(discovery, options.prefix ?? 'config/', options.writeDefaults ?? true, options.logger ?? createLogger('cloudconfig'));
    cfg.watch = await discovery.watch(cfg.prefix, { onEvent: (e) => cfg.dispatch(e) });
    return cfg;
  }

  /** The raw text, or undefined when the key is missing. Never writes. */
  raw(key: string): string | undefined {
    const kv = this.watch?.get(this.prefix + key);
    return kv ? textOf(kv) : undefined;
  }

  int(key: string, def: number): number {
    return this.read(key, def, parseInteger, String(def));
  }

  number(key: string, def: number): number {
    return this.read(key, def, parseNumber, String(def));
  }

  string(key: string, def: string): string {
    return this.read(key, def, (t) => t, def);
  }

  bool(key: string, def: boolean): boolean {
    return this.read(key, def, parseBool, String(def));
  }

  /** `check` rejects JSON of the wrong shape, which then falls back to `def` like unparsable text. */
  json<T>(key: string, def: T, check?: (value: unknown) => value is T): T {
    return this.read(key, def, (t) => parseJson(t, check), JSON.stringify(def) ?? 'null');
  }

  /**
   * Calls `listener` with the key's new text (undefined once deleted) on
   * every change. Returns the function that unsubscribes.
   */
  onChange(key: string, listener: ChangeListener): () => void {
    const full = this.prefix + key;
    let set = this.listeners.get(full);
    if (!set) this.listeners.set(full, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(full) === set) this.listeners.delete(full);
    };
  }

  /**
   * Calls `cb` now with the key's value (as `int` reads it), then whenever the
   * value changes; a bad or deleted value counts as `def`.
   */
  watchInt(key: string, def: number, cb: (value: number) => void): () => void {
    return this.watchValue(key, cb, (write) => this.read(key, def, parseInteger, String(def), write));
  }

  watchNumber(key: string, def: number, cb: (value: number) => void): () => void {
    return this.watchValue(key, cb, (write) => this.read(key, def, parseNumber, String(def), write));
  }

  watchString(key: string, def: string, cb: (value: string) => void): () => void {
    return this.watchValue(key, cb, (write) => this.read(key, def, (t) => t, def, write));
  }

  watchBool(key: string, def: boolean, cb: (value: boolean) => void): () => void {
    return this.watchValue(key, cb, (write) => this.read(key, def, parseBool, String(def), write));
  }

  watchJson<T>(key: string, def: T, cb: (value: T) => void, check?: (value: unknown) => value is T): () => void {
    const same = (a: T, b: T): boolean => JSON.stringify(a) === JSON.stringify(b);
    return this.watchValue(key, cb, (write) => this.read(key, def, (t) => parseJson(t, check), JSON.stringify(def) ?? 'null', write), same);
  }

  /** Stops the watch and drops every listener; getters then return the last values seen, and write nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.watch?.stop();
  }

  private read<T>(key: string, def: T, parse: Parse<T>, defText: string, writeBack = true): T {
    const text = this.raw(key);
    if (text === undefined) {
      if (writeBack) this.writeDefault(key, defText);
      return def;
    }
    const value = parse(text);
    if (value !== undefined) return value;
    if (this.warned.get(key) !== text) {
      this.warned.set(key, text);
      this.log.warn({ key: this.prefix + key, value: text, default: defText }, 'bad cloud config value, using the default');
    }
    return def;
  }

  private writeDefault(key: string, text: string): void {
    if (!this.writeDefaults || this.closed || this.written.has(key)) return;
    this.written.add(key);
    const full = this.prefix + key;
    // Only if still missing: another instance or an operator may have written it meanwhile.
    this.discovery.txn([{ key: full, modRev: 0 }], [{ type: 'put', key: full, value: text }]).catch((err: unknown) => {
      this.log.warn({ key: full, err }, 'could not write cloud config default');
    });
  }

  private watchValue<T>(key: string, cb: (value: T) => void, get: (writeBack: boolean) => T, same: (a: T, b: T) => boolean = Object.is): () => void {
    let last = get(true);
    cb(last);
    return this.onChange(key, () => {
      // An operator's delete means "back to the default"; writing the key straight back would undo it.
      const next = get(false);
      if (same(next, last)) return;
      last = next;
      cb(next);
    });
  }

  private dispatch(event: KvEvent): void {
    const key = event.type === 'put' ? event.kv.key : event.key;
    const set = this.listeners.get(key);
    if (!set) return;
    const text = event.type === 'put' ? textOf(event.kv) : undefined;
    for (const listener of [...set]) {
      try {
        listener(text);
      } catch (err) {
        this.log.error({ key, err }, 'cloud config listener failed');
      }
    }
  }
}

function textOf(kv: KeyValue): string {
  // An empty value can come out of the client's protobuf decoding as no bytes object at all.
  return (kv.value as Uint8Array | undefined)?.length ? asString(kv) : '';
}

function parseInteger(text: string): number | undefined {
  const t = text.trim();
  return /^[+-]?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : undefined;
}

function parseNumber(text: string): number | undefined {
  const t = text.trim();
  const n = Number(t);
  return t !== '' && Number.isFinite(n) ? n : undefined;
}

function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'true' || t === '1' || t === 'yes' || t === 'on') return true;
  if (t === 'false' || t === '0' || t === 'no' || t === 'off') return false;
  return undefined;
}

function parseJson<T>(text: string, check?: (value: unknown) => value is T): T | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (check && !check(value)) return undefined;
  // A stored `null` is a value the caller may mean; only parse failures fall back.
  return value as T;
}
