import { SharedFrame } from '../net/shared-frame.js';
import type { ClientConn } from './client-conn.js';
import type { GroupAdd, GroupRemove, GroupSend } from './messages.js';

/** Groups one backend may keep on one agent, and members per group: bounds what a backend can make an agent hold. */
const MAX_GROUPS_PER_BACKEND = 100_000;

/**
 * Delivers one encoded message (seq 0) to many clients of this agent: the
 * one place group fan-out writes to sockets. The frame is built once per
 * transport (SharedFrame) and the same bytes go to every member's socket.
 */
export function fanOut(members: Iterable<ClientConn>, msgId: number, body: Uint8Array, except?: ReadonlySet<number>): number {
  let sent = 0;
  const frame = new SharedFrame(msgId, 0, body);
  for (const c of members) {
    if (!c.handshaken || except?.has(c.id)) continue;
    c.conn.sendFrame(frame);
    sent++;
  }
  return sent;
}

/**
 * The agent's copy of backends' groups: for each backend instance, its
 * groups' members connected here. A backend sends one GroupSend per agent
 * and this agent fans it out. Members leave when their connection closes;
 * a group with no member left here is forgotten; everything a backend kept
 * here goes when its link goes (the backend drops this agent's members too).
 */
export class AgentGroups {
  private readonly byBackend = new Map<string, Map<string, Set<ClientConn>>>();

  constructor(private readonly clientById: (id: number) => ClientConn | undefined) {}

  /** Groups kept for a backend (for tests and /status). */
  count(backend: string): number {
    return this.byBackend.get(backend)?.size ?? 0;
  }

  members(backend: string, group: string): ReadonlySet<ClientConn> | undefined {
    return this.byBackend.get(backend)?.get(group);
  }

  add(backend: string, msg: GroupAdd): void {
    let groups = this.byBackend.get(backend);
    if (!groups) this.byBackend.set(backend, (groups = new Map()));
    let set = groups.get(msg.group);
    for (const id of msg.client_ids) {
      const c = this.clientById(id);
      // A client that closed meanwhile: its ClientClosed is already on its way to the backend.
      if (!c || c.conn.closed) continue;
      if (!set) {
        if (groups.size >= MAX_GROUPS_PER_BACKEND) return;
        groups.set(msg.group, (set = new Set()));
      }
      set.add(c);
      let mine = (c.groups ??= new Map()).get(backend);
      if (!mine) c.groups.set(backend, (mine = new Set<string>()));
      mine.add(msg.group);
    }
  }

  remove(backend: string, msg: GroupRemove): void {
    const groups = this.byBackend.get(backend);
    const set = groups?.get(msg.group);
    if (!groups || !set) return;
    if (msg.drop) {
      for (const c of set) c.groups?.get(backend)?.delete(msg.group);
      groups.delete(msg.group);
    } else {
      for (const id of msg.client_ids) {
        const c = this.clientById(id);
        if (!c || !set.delete(c)) continue;
        c.groups?.get(backend)?.delete(msg.group);
      }
      if (set.size === 0) groups.delete(msg.group);
    }
    if (groups.size === 0) this.byBackend.delete(backend);
  }

  send(backend: string, msg: GroupSend): number {
    const set = this.byBackend.get(backend)?.get(msg.group);
    if (!set) return 0;
    return fanOut(set, msg.msg_id, msg.body, msg.except_ids.length > 0 ? new Set(msg.except_ids) : undefined);
  }

  /** The client closed: it leaves every group. */
  clientClosed(c: ClientConn): void {
    if (!c.groups) return;
    for (const [backend, names] of c.groups) {
      const groups = this.byBackend.get(backend);
      if (!groups) continue;
      for (const name of names) {
        const set = groups.get(name);
        if (!set) continue;
        set.delete(c);
        if (set.size === 0) groups.delete(name);
      }
      if (groups.size === 0) this.byBackend.delete(backend);
    }
    c.groups = undefined;
  }

  /** The backend's link went down: it forgets this agent's members, and so does the agent. */
  backendDown(backend: string): void {
    const groups = this.byBackend.get(backend);
    if (!groups) return;
    for (const set of groups.values()) for (const c of set) c.groups?.delete(backend);
    this.byBackend.delete(backend);
  }
}
