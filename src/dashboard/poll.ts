/**
 * Reads every service's admin port (meta `admin`) every few seconds:
 * GET /status for links, memory and clients, GET /metrics for the counters
 * whose rate is the "calls/s" column. A service without an admin port, or
 * one that does not answer, is shown with what the registry says.
 */
import type { ServiceDesc } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import { parsePrometheus } from './prom-text.js';

export interface Load {
  readonly state: string | undefined;
  /** Resident memory, bytes. */
  readonly rss: number | undefined;
  /** Agents: clients connected. */
  readonly clients: number | undefined;
  /** What the service reports as rooms, if it does. */
  readonly rooms: number | undefined;
  /** RPC calls served, one-way messages received and client messages forwarded, per second. */
  readonly perSec: number | undefined;
  /** Peer ids this service has links to. */
  readonly links: readonly string[];
  readonly error: string | undefined;
  readonly at: number;
}

interface Seen {
  desc: ServiceDesc;
  load?: Load;
  total?: { at: number; n: number };
}

const TIMEOUT_MS = 1500;

export class AdminPoller {
  private readonly seen = new Map<string, Seen>();
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(
    private readonly token: string | undefined,
    pollMs: number,
    private readonly changed: () => void,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.poll(), pollMs);
    this.timer.unref();
  }

  set(descs: readonly ServiceDesc[]): void {
    const ids = new Set(descs.map((d) => d.id));
    for (const id of this.seen.keys()) if (!ids.has(id)) this.seen.delete(id);
    const fresh: Seen[] = [];
    for (const d of descs) {
      const s = this.seen.get(d.id);
      if (s) s.desc = d;
      else {
        const n = { desc: d };
        this.seen.set(d.id, n);
        fresh.push(n);
      }
    }
    // A service that just joined is read at once, not at the next round.
    if (fresh.length > 0) void Promise.all(fresh.map((s) => this.read(s))).then(() => this.changed());
  }

  desc(id: string): ServiceDesc | undefined {
    return this.seen.get(id)?.desc;
  }

  load(id: string): Load | undefined {
    return this.seen.get(id)?.load;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await Promise.all([...this.seen.values()].map((s) => this.read(s)));
      this.changed();
    } finally {
      this.busy = false;
    }
  }

  private async read(s: Seen): Promise<void> {
    const admin = s.desc.meta['admin'];
    if (!admin) return;
    const at = Date.now();
    const headers: Record<string, string> = this.token ? { authorization: `Bearer ${this.token}` } : {};
    try {
      const [status, metrics] = await Promise.all([
        fetchText(`http://${admin}/status`, headers).then((t) => JSON.parse(t) as Record<string, unknown>),
        fetchText(`http://${admin}/metrics`, headers).then(parsePrometheus),
      ]);
      const n = metrics.sum('gamemesh_rpc_server_calls_total') + metrics.sum('gamemesh_rpc_messages_received_total') + metrics.sum('gamemesh_agent_messages_total', { result: 'forwarded' });
      const prev = s.total;
      s.total = { at, n };
      const links = Array.isArray(status['links']) ? (status['links'] as Array<{ id?: unknown }>).map((l) => String(l.id)) : [];
      const memory = status['memory'] as { rss?: unknown } | undefined;
      s.load = {
        state: typeof status['state'] === 'string' ? status['state'] : undefined,
        rss: typeof memory?.rss === 'number' ? memory.rss : undefined,
        clients: typeof status['online'] === 'number' ? status['online'] : undefined,
        rooms: typeof status['rooms'] === 'number' ? status['rooms'] : undefined,
        perSec: prev && at > prev.at ? Math.max(0, ((n - prev.n) * 1000) / (at - prev.at)) : undefined,
        links,
        error: undefined,
        at,
      };
    } catch (err) {
      const why = (err as Error).message;
      if (s.load?.error !== why) this.log.debug({ service: s.desc.id, admin, err: why }, 'admin port did not answer');
      s.load = { state: undefined, rss: undefined, clients: undefined, rooms: undefined, perSec: undefined, links: [], error: why, at };
    }
  }
}

async function fetchText(url: string, headers: Record<string, string>): Promise<string> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}${res.status === 401 ? ' (the dashboard needs the cluster token: --token or GAMEMESH_TOKEN)' : ''}`);
  return text;
}
