/**
 * The service runtime's metrics: RPC calls by method and result code on both
 * sides, caller-side latency, calls in flight, links up, reconnects and
 * refused links. The engines count in plain fields; prom-client reads them here.
 */
import { counterFrom, gaugeFrom, HistogramFamily, Instances } from '../observe/metrics.js';

/** Result codes by count; 'ok' has its own field (the common case costs one increment). */
export class CodeCounts {
  ok = 0;
  readonly other = new Map<string, number>();
  add(code: string): void {
    if (code === 'ok') this.ok++;
    else this.other.set(code, (this.other.get(code) ?? 0) + 1);
  }
  forEach(fn: (code: string, n: number) => void): void {
    if (this.ok > 0) fn('ok', this.ok);
    for (const [code, n] of this.other) fn(code, n);
  }
}

const clientLatency = new HistogramFamily('gamemesh_rpc_client_duration_seconds', 'RPC calls made: time from sending the request to the answer (or failure), by method', ['method']);

/** One method, caller side. */
export class ClientMethod {
  readonly codes = new CodeCounts();
  readonly latency;
  constructor(readonly method: string) {
    this.latency = clientLatency.with(method);
  }
}

/** One method or message type, callee side. */
export class ServerMethod {
  readonly codes = new CodeCounts();
  /** One-way messages received. */
  received = 0;
  constructor(readonly method: string) {}
}

/** What one RpcEngine counts. */
export interface RpcCounts {
  readonly client: ReadonlyMap<number, ClientMethod>;
  readonly server: ReadonlyMap<number, ServerMethod>;
  /** Requests for no registered method (any id: one label, so a hostile peer cannot grow the series). */
  readonly unknown: CodeCounts;
  readonly pendingCalls: number;
  readonly inflight: number;
}

/** Every live RpcEngine of this process (a process usually has one node; tests have many). */
export const rpcEngines = new Set<RpcCounts>();
/** What closed engines counted, by method name, so that no counter goes down. */
const retired = { client: new Map<string, CodeCounts>(), server: new Map<string, CodeCounts>(), received: new Map<string, number>() };

/** An engine closed: its counts are kept in the process's totals. */
export function retireRpc(e: RpcCounts): void {
  if (!rpcEngines.delete(e)) return;
  const merge = (into: Map<string, CodeCounts>, method: string, codes: CodeCounts) => {
    let c = into.get(method);
    if (!c) into.set(method, (c = new CodeCounts()));
    c.ok += codes.ok;
    for (const [code, n] of codes.other) c.other.set(code, (c.other.get(code) ?? 0) + n);
  };
  for (const m of e.client.values()) merge(retired.client, m.method, m.codes);
  for (const m of e.server.values()) {
    merge(retired.server, m.method, m.codes);
    retired.received.set(m.method, (retired.received.get(m.method) ?? 0) + m.received);
  }
  merge(retired.server, 'unknown', e.unknown);
}

function eachMethod(side: 'client' | 'server', set: (labels: { method: string; code: string }, v: number) => void): void {
  const sums = new Map<string, number>();
  const add = (method: string, codes: CodeCounts) => codes.forEach((code, n) => sums.set(`${method}\u0000${code}`, (sums.get(`${method}\u0000${code}`) ?? 0) + n));
  for (const [method, codes] of retired[side]) add(method, codes);
  for (const e of rpcEngines) {
    for (const m of e[side].values()) add(m.method, m.codes);
    if (side === 'server') add('unknown', e.unknown);
  }
  for (const [k, n] of sums) {
    const [method, code] = k.split('\u0000') as [string, string];
    set({ method, code }, n);
  }
}

counterFrom('gamemesh_rpc_client_calls_total', 'RPC calls made, by method and result code (ok, timeout, unavailable, busy, application, ...)', ['method', 'code'], (set) => eachMethod('client', set));
counterFrom('gamemesh_rpc_server_calls_total', 'RPC calls served, by method and result code', ['method', 'code'], (set) => eachMethod('server', set));
counterFrom('gamemesh_rpc_messages_received_total', 'One-way messages received on service links, by message type', ['method'], (set) => {
  const sums = new Map<string, number>(retired.received);
  for (const e of rpcEngines) for (const m of e.server.values()) if (m.received > 0) sums.set(m.method, (sums.get(m.method) ?? 0) + m.received);
  for (const [method, n] of sums) set({ method }, n);
});
gaugeFrom('gamemesh_rpc_inflight', 'RPC calls in flight: made and not answered yet (client), being handled (server)', ['side'], (set) => {
  let client = 0;
  let server = 0;
  for (const e of rpcEngines) {
    client += e.pendingCalls;
    server += e.inflight;
  }
  set({ side: 'client' }, client);
  set({ side: 'server' }, server);
});

/** Link events of one node's peer table. */
export interface LinkCounts {
  /** Connected peers by service name. */
  up(): Map<string, number>;
  reconnects: number;
  dialFailures: number;
  refused: number;
}

export const linkTables = new Instances<LinkCounts, { reconnects: number; dialFailures: number; refused: number }>((l) => ({ reconnects: l.reconnects, dialFailures: l.dialFailures, refused: l.refused }), { reconnects: 0, dialFailures: 0, refused: 0 });

gaugeFrom('gamemesh_links_up', 'Service links up, by the peer service name', ['peer_service'], (set) => {
  const sums = new Map<string, number>();
  for (const t of linkTables.values()) for (const [name, n] of t.up()) sums.set(name, (sums.get(name) ?? 0) + n);
  for (const [name, n] of sums) set({ peer_service: name }, n);
});
counterFrom('gamemesh_link_events_total', 'Service link events: reconnects (a link to a known peer came back), dial failures, refused (handshake failed: wrong secret, bad protocol, timeout)', ['event'], (set) => {
  const t = linkTables.totals();
  set({ event: 'reconnect' }, t.reconnects);
  set({ event: 'dial_failure' }, t.dialFailures);
  set({ event: 'refused' }, t.refused);
});
