/**
 * A ServiceNode's admin port: the AdminServer with GET /metrics and a basic
 * GET /status (who the node is, its links, its memory, and what the service
 * adds with `node.addStatus`).
 */
import { AdminServer } from './admin.js';
import type { Logger } from '../log/index.js';

export interface NodeLinkStatus {
  readonly id: string;
  readonly name: string;
  readonly addr: string;
  readonly load: number;
  readonly draining: boolean;
  readonly dialed: boolean;
}

/** What GET /status answers. */
export interface NodeStatus {
  readonly id: string;
  readonly name: string;
  /** Logical address cluster.type.index. */
  readonly addr: string;
  /** host:port of the link listener. */
  readonly address: string;
  readonly group: string;
  readonly version: number;
  /** new, starting, running, retiring, stopping, stopped. */
  readonly state: string;
  /** While retiring: why, and since when. */
  readonly retiring: { readonly reason: string; readonly sinceMs: number } | undefined;
  /** What holds a retiring node (clients, bindings). */
  readonly holding: number;
  readonly ready: boolean;
  readonly load: number;
  readonly links: readonly NodeLinkStatus[];
  readonly memory: { readonly rss: number; readonly heapUsed: number; readonly heapTotal: number; readonly external: number };
  readonly uptimeSec: number;
  readonly pid: number;
  /** Fields the service adds (the agent: clients by transport). */
  readonly [extra: string]: unknown;
}

export interface AdminHost {
  readonly config: { readonly admin?: string; readonly token: string | undefined };
  readonly log: Logger;
  status(): NodeStatus;
}

export async function startNodeAdmin(node: AdminHost): Promise<AdminServer> {
  const admin = await AdminServer.start({ listen: node.config.admin ?? '', token: node.config.token, logger: node.log });
  admin.route('GET', '/status', () => ({ json: node.status() }));
  return admin;
}

export function memoryStatus(): NodeStatus['memory'] {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
}
