/**
 * Which gateway (agent) a player is sent to: the least-loaded one with room,
 * from discovery's cached view of the agents' registrations.
 */
import { admitted } from '../discovery/admission.js';
import type { Discovery, ServiceDesc, ServiceWatch } from '../discovery/types.js';
import { groupMatcher } from '../service/link-rules.js';
import { memoryRatio, memoryRefusal } from '../discovery/memory.js';

/** An agent's client addresses by transport, from its registration. */
export interface AgentEndpoints {
  /** host:port of the client TCP port, when the agent has one. */
  readonly tcp?: string;
  /** ws://host:port/path, when the agent has one. */
  readonly ws?: string;
  /** host:port of the client KCP (UDP) port, when the agent has one. */
  readonly kcp?: string;
  /** The pomelo ports (docs/pomelo.md), when the agent has them: ws://host:port/ and host:port. */
  readonly pomelo_ws?: string;
  readonly pomelo_tcp?: string;
}

/** The agent a login sends a player to. */
export interface AgentChoice extends AgentEndpoints {
  readonly id: string;
  readonly online: number;
  readonly capacity: number;
}

/** What an agent registers when it does not say (the agent's own default). */
const DEFAULT_CAPACITY = 10_000;
/**
 * Agents report their online count once a second, so players sent in a
 * burst would all go to the same agent. Each login counts the players it
 * sent to an agent until that agent's next report, or this long at most.
 */
const PENDING_MS = 5000;

/** How login ranks agents that can take a player: by client share of capacity, or by memory use (DOMI). */
export type AgentStrategy = 'least-loaded' | 'least-memory';

/** How pickAgent chooses: the strategy, players already sent but not yet connected, and the random source. */
export interface PickOptions {
  /** Players sent to this agent that its `online` does not show yet. */
  pending?: (desc: ServiceDesc) => number;
  random?: () => number;
  strategy?: AgentStrategy;
}

/**
 * The agent with the lowest share of its capacity in use, ties broken at
 * random; agents at or over capacity, or with no client port, are skipped.
 */
export function pickAgent(agents: readonly ServiceDesc[], options: PickOptions = {}): AgentChoice | undefined {
  let best: AgentChoice[] = [];
  let bestLoad = Infinity;
  for (const desc of agents) {
    const c = candidate(desc, options.pending?.(desc) ?? 0, options.strategy);
    if (!c || c.load > bestLoad) continue;
    if (c.load < bestLoad) {
      bestLoad = c.load;
      best = [];
    }
    best.push(c.choice);
  }
  if (best.length === 0) return undefined;
  return best[Math.min(best.length - 1, Math.floor((options.random ?? Math.random)() * best.length))];
}

/**
 * The agent as a choice with its expected load, or undefined when it cannot
 * take a player: full, no client port, or above its memory threshold.
 */
function candidate(desc: ServiceDesc, pending: number, strategy: AgentStrategy = 'least-loaded'): { choice: AgentChoice; load: number } | undefined {
  if (memoryRefusal(desc) !== undefined) return undefined;
  const online = readCount(desc.meta['online'], 0);
  const capacity = readCount(desc.meta['capacity'], DEFAULT_CAPACITY);
  const ends = agentEndpoints(desc);
  if (online === undefined || capacity === undefined || (!ends.tcp && !ends.ws && !ends.kcp)) return undefined;
  const expected = online + pending;
  if (expected >= capacity) return undefined;
  // Memory in whole percents, so agents within a percent of each other share the players at random.
  const load = strategy === 'least-memory' ? Math.round(memoryRatio(desc.meta) * 100) : expected / capacity;
  return { choice: { id: desc.id, ...ends, online, capacity }, load };
}

/** The agent's client addresses, with the host replaced by its WAN address when it registered one. */
export function agentEndpoints(desc: ServiceDesc): AgentEndpoints {
  const wan = desc.meta['wan'];
  const tcp = desc.meta['tcp'] || undefined;
  const ws = desc.meta['ws'] || undefined;
  const kcp = desc.meta['kcp'] || undefined;
  const pomeloWs = desc.meta['pomelo_ws'] || undefined;
  const pomeloTcp = desc.meta['pomelo_tcp'] || undefined;
  const pomelo = (w: string | undefined, t: string | undefined) => ({ ...(w ? { pomelo_ws: w } : {}), ...(t ? { pomelo_tcp: t } : {}) });
  if (!wan) return { tcp, ws, kcp, ...pomelo(pomeloWs, pomeloTcp) };
  return { tcp: tcp && replaceHostPort(tcp, wan), ws: ws && replaceUrlHost(ws, wan), kcp: kcp && replaceHostPort(kcp, wan), ...pomelo(pomeloWs && replaceUrlHost(pomeloWs, wan), pomeloTcp && replaceHostPort(pomeloTcp, wan)) };
}

/** Options of the AgentPicker: the agents' group, which of them are available and visible, and the strategy. */
export interface AgentPickerOptions {
  /** Link rule (`dev`, `dev|test`, `zone*`) of the agent groups players may be sent to. */
  group: string;
  /** False for an agent an operator disabled (`gamemesh sd disable`): it gets no new players. */
  available?: (id: string) => boolean;
  /** False for an agent this login's cluster may not use (another cluster's, not exported). */
  visible?: (desc: ServiceDesc) => boolean;
  random?: () => number;
  /** Default least-loaded; either way an agent above its memory threshold gets no players. */
  strategy?: AgentStrategy;
}

/** pickAgent over a live watch of the agents, counting the players it has just sent. */
export class AgentPicker {
  private readonly sent = new Map<string, { count: number; online: string | undefined; until: number }>();

  private constructor(
    private readonly watch: ServiceWatch,
    private readonly inGroup: (group: string) => boolean,
    private readonly available: (id: string) => boolean,
    private readonly random: () => number,
    private readonly visible: (desc: ServiceDesc) => boolean,
    private readonly strategy: AgentStrategy,
  ) {}

  static async open(discovery: Discovery, options: AgentPickerOptions): Promise<AgentPicker> {
    const inGroup = groupMatcher(options.group);
    return new AgentPicker(await discovery.watchServices('agent'), inGroup, options.available ?? (() => true), options.random ?? Math.random, options.visible ?? (() => true), options.strategy ?? 'least-loaded');
  }

  /** Agents in the group that admission admits (available, not retiring, newest version), whether or not they have room. */
  agents(): ServiceDesc[] {
    return admitted(
      this.watch.list().filter((d) => this.inGroup(d.meta['group'] ?? '') && this.visible(d)),
      (id) => ({ available: this.available(id) }),
    );
  }

  /** How many agents could take a player now; nothing is counted. */
  withRoom(): number {
    const now = Date.now();
    return this.agents().filter((d) => candidate(d, this.pending(d, now)) !== undefined).length;
  }

  /** Why agents take no players because of their memory (for the 503 answer). */
  memoryRefusals(): string[] {
    return this.agents().flatMap((d) => memoryRefusal(d) ?? []);
  }

  /** Picks an agent and counts one more player on its way there. */
  pick(): AgentChoice | undefined {
    const now = Date.now();
    const pending = (desc: ServiceDesc): number => this.pending(desc, now);
    const choice = pickAgent(this.agents(), { pending, random: this.random, strategy: this.strategy });
    if (choice) {
      const desc = this.watch.get(choice.id);
      this.sent.set(choice.id, { count: (desc ? pending(desc) : 0) + 1, online: desc?.meta['online'], until: now + PENDING_MS });
    }
    for (const [id, s] of this.sent) if (now >= s.until) this.sent.delete(id);
    return choice;
  }

  /** Players sent since the agent last reported its online count (so far as this login knows). */
  private pending(desc: ServiceDesc, now: number): number {
    const s = this.sent.get(desc.id);
    return s && s.online === desc.meta['online'] && now < s.until ? s.count : 0;
  }

  close(): void {
    this.watch.stop();
  }
}

/** A non-negative integer from registration meta; undefined when present but not a number. */
function readCount(text: string | undefined, def: number): number | undefined {
  if (text === undefined || text === '') return def;
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function replaceHostPort(hostPort: string, host: string): string {
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? hostPort : `${bracket(host)}${hostPort.slice(colon)}`;
}

function replaceUrlHost(url: string, host: string): string {
  try {
    const u = new URL(url);
    u.hostname = bracket(host);
    return u.toString();
  } catch {
    return url;
  }
}
