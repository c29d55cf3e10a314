import type { ServiceNode } from '../service/node.js';
import type { Init } from '../service/rpc.js';
import type { MessageType } from '../wire/registry.js';
import { G } from './messages.js';

/** A client as a backend sees it (the same shape as ClientRef in backend.ts). */
export interface GroupMember {
  readonly agent: string;
  readonly id: number;
}

/** Options of a group: `keep` keeps it once its last member left. */
export interface GroupOptions {
  /** Keep the group when its last member leaves (default: it is dropped). */
  keep?: boolean;
}

/** Who a group broadcast leaves out. */
export interface BroadcastOptions {
  /** Members that do not get this message (e.g. the sender). */
  except?: GroupMember | readonly GroupMember[];
}

/** Why a member left without being removed: its connection closed, or its agent's link went down. */
export type MemberLostReason = { readonly kind: 'closed'; readonly reason: string } | { readonly kind: 'agent_down'; readonly reason: string };

/**
 * A named set of clients on one backend (DOMI's group), spread over any
 * number of agents. A broadcast is encoded once and sent as one GroupSend
 * per agent with members; each agent keeps the member list it serves and
 * fans the message out. Members leave by themselves when they close.
 */
export class Group {
  private readonly byAgent = new Map<string, Set<number>>();
  private count = 0;
  private dropped = false;

  /** @internal Made by Groups.get (backend.group(id)). */
  constructor(
    readonly id: string,
    private readonly registry: Groups,
    /** Kept when empty (set through GroupOptions.keep, or later). */
    public keep: boolean,
  ) {}

  get size(): number {
    return this.count;
  }

  /** A snapshot of the members. */
  get members(): GroupMember[] {
    const out: GroupMember[] = [];
    for (const [agent, ids] of this.byAgent) for (const id of ids) out.push({ agent, id });
    return out;
  }

  /** Agents that hold members of this group. */
  get agents(): string[] {
    return [...this.byAgent.keys()];
  }

  has(client: GroupMember): boolean {
    return this.byAgent.get(client.agent)?.has(client.id) ?? false;
  }

  /** Adds a client; false if it was a member already. A dropped group is revived by add(). */
  add(client: GroupMember): boolean {
    if (this.dropped) this.registry.revive(this);
    let ids = this.byAgent.get(client.agent);
    if (!ids) this.byAgent.set(client.agent, (ids = new Set()));
    if (ids.has(client.id)) return false;
    ids.add(client.id);
    this.count++;
    this.registry.indexAdd(client, this);
    this.registry.node.sendToPeer(client.agent, G.GroupAdd, { group: this.id, client_ids: [client.id] });
    return true;
  }

  /** Removes a client; false if it was not a member. */
  remove(client: GroupMember): boolean {
    if (!this.forget(client)) return false;
    this.registry.node.sendToPeer(client.agent, G.GroupRemove, { group: this.id, client_ids: [client.id], drop: false });
    this.dropIfEmpty();
    return true;
  }

  /**
   * Sends one message to every member: encoded once, one GroupSend per agent
   * with members. Returns the number of agents it was handed to.
   */
  broadcast<T>(type: MessageType<T>, msg: Init<T>, options: BroadcastOptions = {}): number {
    return this.broadcastEncoded(type.id, type.encode(msg), options);
  }

  /** broadcast() with a body already encoded (e.g. one state snapshot shared by several groups). */
  broadcastEncoded(msgId: number, body: Uint8Array, options: BroadcastOptions = {}): number {
    const except = options.except === undefined ? [] : Array.isArray(options.except) ? (options.except as readonly GroupMember[]) : [options.except as GroupMember];
    let agents = 0;
    for (const [agent, ids] of this.byAgent) {
      if (ids.size === 0) continue;
      const exceptIds: number[] = [];
      for (const e of except) if (e.agent === agent && ids.has(e.id)) exceptIds.push(e.id);
      if (exceptIds.length === ids.size) continue;
      if (this.registry.node.sendToPeer(agent, G.GroupSend, { group: this.id, msg_id: msgId, body, except_ids: exceptIds })) agents++;
    }
    return agents;
  }

  /** Removes every member and forgets the group, on the agents too. */
  drop(): void {
    for (const [agent, ids] of this.byAgent) {
      for (const id of ids) this.registry.indexRemove({ agent, id }, this);
      this.registry.node.sendToPeer(agent, G.GroupRemove, { group: this.id, client_ids: [], drop: true });
    }
    this.byAgent.clear();
    this.count = 0;
    this.dropped = true;
    this.registry.forgetGroup(this);
  }

  /** @internal Removes a member here only (its agent has already forgotten it). */
  forget(client: GroupMember): boolean {
    const ids = this.byAgent.get(client.agent);
    if (!ids?.delete(client.id)) return false;
    if (ids.size === 0) this.byAgent.delete(client.agent);
    this.count--;
    this.registry.indexRemove(client, this);
    return true;
  }

  /** @internal */
  dropIfEmpty(): void {
    if (this.count === 0 && !this.keep && !this.dropped) {
      this.dropped = true;
      this.registry.forgetGroup(this);
    }
  }

  /** @internal */
  markLive(): void {
    this.dropped = false;
  }
}

type LostHandler = (client: GroupMember, groups: readonly Group[], why: MemberLostReason) => void;

/** A backend's groups, by id, with an index from each client to the groups it is in. */
export class Groups {
  private readonly groups = new Map<string, Group>();
  private readonly ofClient = new Map<string, Set<Group>>();
  private readonly lostHandlers: LostHandler[] = [];

  constructor(readonly node: ServiceNode) {}

  /** The group with this id, created on first use. */
  get(id: string, options: GroupOptions = {}): Group {
    let g = this.groups.get(id);
    if (!g) this.groups.set(id, (g = new Group(id, this, options.keep ?? false)));
    else if (options.keep !== undefined) g.keep = options.keep;
    return g;
  }

  /** The group if it exists, without creating it. */
  find(id: string): Group | undefined {
    return this.groups.get(id);
  }

  get size(): number {
    return this.groups.size;
  }

  /** Groups this client is a member of. */
  of(client: GroupMember): Group[] {
    return [...(this.ofClient.get(key(client)) ?? [])];
  }

  /** Members that left without remove(): their connection closed, or their agent's link went down. Runs after they are removed. */
  onMemberLost(fn: LostHandler): void {
    this.lostHandlers.push(fn);
  }

  /** @internal The agent said the client closed; the agent has already dropped it from its groups. */
  clientClosed(client: GroupMember, reason: string): void {
    const set = this.ofClient.get(key(client));
    if (!set) return;
    const groups = [...set];
    for (const g of groups) g.forget(client);
    for (const g of groups) g.dropIfEmpty();
    this.lost(client, groups, { kind: 'closed', reason });
  }

  /** @internal The agent's link went down: it has forgotten this backend's groups, so its members leave them. */
  agentDown(agent: string, reason: string): void {
    const lost: Array<[GroupMember, Group[]]> = [];
    for (const [k, set] of this.ofClient) {
      if (!k.startsWith(`${agent}/`)) continue;
      const client = { agent, id: Number(k.slice(agent.length + 1)) };
      lost.push([client, [...set]]);
    }
    for (const [client, groups] of lost) {
      for (const g of groups) g.forget(client);
      for (const g of groups) g.dropIfEmpty();
    }
    for (const [client, groups] of lost) this.lost(client, groups, { kind: 'agent_down', reason });
  }

  private lost(client: GroupMember, groups: readonly Group[], why: MemberLostReason): void {
    for (const fn of this.lostHandlers) {
      try {
        fn(client, groups, why);
      } catch (err) {
        this.node.log.warn({ client, err }, 'a group member-lost handler failed');
      }
    }
  }

  /** @internal */
  indexAdd(client: GroupMember, g: Group): void {
    const k = key(client);
    let set = this.ofClient.get(k);
    if (!set) this.ofClient.set(k, (set = new Set()));
    set.add(g);
  }

  /** @internal */
  indexRemove(client: GroupMember, g: Group): void {
    const k = key(client);
    const set = this.ofClient.get(k);
    if (!set) return;
    set.delete(g);
    if (set.size === 0) this.ofClient.delete(k);
  }

  /** @internal */
  forgetGroup(g: Group): void {
    if (this.groups.get(g.id) === g) this.groups.delete(g.id);
  }

  /** @internal */
  revive(g: Group): void {
    g.markLive();
    const current = this.groups.get(g.id);
    if (current && current !== g) throw new Error(`group "${g.id}" was dropped and made again; use backend.group("${g.id}") for the new one`);
    this.groups.set(g.id, g);
  }
}

function key(c: GroupMember): string {
  return `${c.agent}/${c.id}`;
}
