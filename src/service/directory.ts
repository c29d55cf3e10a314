/**
 * What a node knows of the cluster beyond its own links: the operators'
 * node states (the `available` flag), every live node by logical address
 * for lookups by type (clustergo's GetAddrByType), and its own
 * registration, which must not take an id or address another live node
 * holds.
 */
import { admission, newestVersions } from '../discovery/admission.js';
import { NODE_STATE_PREFIX, nodeStateId, nodeStateKey, parseNodeState, type NodeState } from '../discovery/node-state.js';
import type { EventEmitter } from 'node:events';
import { RegistrationConflict, type Discovery, type ServiceDesc, type ServiceWatch, type Watch } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import { RpcError } from './errors.js';
import { formatAddr, parseAddr, unpackAddr } from './identity.js';
import { hash32 } from './select.js';
import type { ExportsView } from './exports.js';

/** A claim that should have expired by then and has not was renewed: its holder is alive. */
const RENEWED_MARGIN_MS = 1500;
const POLL_MS = 500;

export class Directory {
  private states: Watch | undefined;
  private all: Promise<ServiceWatch> | undefined;
  private unlisten: (() => void) | undefined;
  /** Other clusters' exported nodes, copied into this discovery by harbors (exports.ts). */
  exports: ExportsView | undefined;

  constructor(
    private readonly disco: Discovery,
    /** Called with a node's id when its state changes. */
    private readonly onStateChange: (id: string) => void,
    /** Which registrations this node may see (cluster-scope.ts); all by default. */
    private readonly visible: (desc: ServiceDesc) => boolean = () => true,
  ) {}

  async open(): Promise<void> {
    this.states = await this.disco.watch(NODE_STATE_PREFIX, {
      onEvent: (ev) => {
        const id = nodeStateId(ev.type === 'put' ? ev.kv.key : ev.key);
        if (id) this.onStateChange(id);
      },
    });
  }

  state(id: string): NodeState {
    return parseNodeState(this.states?.get(nodeStateKey(id)));
  }

  available(id: string): boolean {
    return this.state(id).available;
  }

  /** Logical addresses of the live nodes of a type that admission admits (available, not retiring, newest version), in address order. */
  async addrsByType(type: number): Promise<string[]> {
    const found: Array<[number, string]> = [];
    const all = [...(await this.allServices()).list(), ...(this.exports?.list() ?? [])].filter((d) => this.visible(d));
    const newest = newestVersions(all, (id) => this.available(id));
    for (const desc of all) {
      const text = desc.meta['addr'];
      const addr = text ? tryParse(text) : undefined;
      if (addr === undefined || unpackAddr(addr).type !== type) continue;
      if (admission(desc, { state: this.state(desc.id), newest: newest(desc) }).admit) found.push([addr, text as string]);
    }
    return found.sort((a, b) => a[0] - b[0]).map(([, text]) => text);
  }

  /**
   * One of them: at random, or, with a key, the same one for the same key
   * while it lives (rendezvous hashing: a node leaving moves only its keys).
   */
  async pickAddr(type: number, key?: string): Promise<string | undefined> {
    const addrs = await this.addrsByType(type);
    if (addrs.length <= 1 || key === undefined) return addrs[Math.floor(Math.random() * addrs.length)];
    let best = addrs[0] as string;
    let bestScore = -1;
    for (const a of addrs) {
      const score = hash32(`${key}\n${a}`);
      if (score > bestScore) [best, bestScore] = [a, score];
    }
    return best;
  }

  /** The node that has a logical address, found in discovery (a lazy connect, as in clustergo). */
  async lookup(addr: number): Promise<ServiceDesc> {
    const found = await this.find(addr);
    if (!found) throw new RpcError('unavailable', `no service has logical address ${formatAddr(addr)}`);
    return found;
  }

  /** The visible node that has a logical address, if any. */
  async find(addr: number): Promise<ServiceDesc | undefined> {
    const text = formatAddr(addr);
    return (await this.disco.listServices()).find((d) => d.meta['addr'] === text && this.visible(d)) ?? this.exports?.list().find((d) => d.meta['addr'] === text);
  }

  /** The whole registry, watched from the first lookup by type on. */
  private allServices(): Promise<ServiceWatch> {
    this.all ??= this.disco.watchServices();
    this.all.catch(() => (this.all = undefined));
    return this.all;
  }

  /** Calls `fn` when the backend reports that this id's registration was taken by another process (until close). */
  onConflict(id: string, fn: (err: RegistrationConflict) => void): void {
    const events = this.disco as Partial<Pick<EventEmitter<{ conflict: [RegistrationConflict, ServiceDesc] }>, 'on' | 'off'>>;
    const listener = (err: RegistrationConflict, desc: ServiceDesc) => {
      if (desc.id === id) fn(err);
    };
    events.on?.('conflict', listener);
    this.unlisten = () => events.off?.('conflict', listener);
  }

  close(): void {
    this.unlisten?.();
    this.states?.stop();
    this.exports?.stop();
    void this.all?.then((w) => w.stop(), () => {});
  }
}

/**
 * Registers `desc`. While its id or address is held by a registration whose
 * owner is gone (a crash: the built-in server's grace period, or an etcd
 * lease running out), waits for that to expire, up to maxWaitMs, then takes
 * it. A live holder is refused at once (RegistrationConflict), or, on etcd,
 * as soon as its claim outlives the expiry it announced.
 */
export async function registerWhenFree(d: Discovery, desc: ServiceDesc, log: Logger, maxWaitMs: number): Promise<void> {
  const deadline = Date.now() + maxWaitMs;
  let firstEnd: number | undefined;
  let lastEnd: number | undefined;
  for (;;) {
    try {
      await d.register(desc);
      return;
    } catch (err) {
      if (!(err instanceof RegistrationConflict) || err.retryAfterMs === undefined) throw err;
      const now = Date.now();
      const end = now + err.retryAfterMs;
      const renewed = (firstEnd !== undefined && now > firstEnd + RENEWED_MARGIN_MS) || (lastEnd !== undefined && end > lastEnd + RENEWED_MARGIN_MS);
      if (renewed) throw new RegistrationConflict(err.message, undefined);
      if (end > deadline) throw err;
      // Info, not warn: on etcd a live holder looks the same until its lease outlives its TTL.
      if (firstEnd === undefined) log.info({ held: err.message, expiresInMs: err.retryAfterMs }, 'held by a registration that may be stale (its owner crashed?); waiting for it to expire');
      firstEnd = Math.min(firstEnd ?? end, end);
      lastEnd = end;
      const wait = Math.min(POLL_MS, err.retryAfterMs + 10);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function tryParse(text: string): number | undefined {
  try {
    return parseAddr(text);
  } catch {
    return undefined;
  }
}
