/**
 * GatewayBackend's dispatch of client messages in one process, without
 * sockets: what the per-client mailbox costs on the hot path. The node is a
 * stub whose sendToPeer encodes the ToClients envelope and drops it, so each
 * case does the real work of a backend short of the syscalls.
 *
 * Baseline, in the same run: the same message decoded, handled, answered and
 * enveloped by straight-line code (what any dispatch must do).
 * Cases: a synchronous handler (100 clients, one message each per batch: a
 * client with nothing in flight has no mailbox); an async handler, 100
 * clients with one in flight each; an async handler, one client with 100
 * queued (each starts after the previous one settled).
 */
import path from 'node:path';
import { pino } from 'pino';
import { GatewayBackend } from '../src/gateway/backend.js';
import { G, type ClientMessage } from '../src/gateway/messages.js';
import type { ServiceNode } from '../src/service/node.js';
import type { PeerInfo } from '../src/service/rpc.js';
import { MessageRegistry, type MessageType } from '../src/wire/registry.js';
import { ROOT } from './harness.js';
import { DEFAULT_MS, fmtInt, fmtNum, isMain, printTable } from './lib.js';

interface EchoReq {
  text: string;
  n: number;
}

const BATCH = 100;
const ROUNDS = 4;

type Handler = (msg: ClientMessage, ctx: { peer: PeerInfo }) => void;

function stubNode(onSent: () => void): { node: ServiceNode; handlers: Map<string, Handler> } {
  const handlers = new Map<string, Handler>();
  const node = {
    id: 'echo#0@dev',
    stopping: false,
    log: pino({ level: 'info' }).child({ name: 'service.echo' }),
    addDependency() {},
    onDrain() {},
    addHold() {},
    on() {},
    onMessage(type: MessageType<unknown>, fn: Handler) {
      handlers.set(type.name, fn);
    },
    sendToPeer(_id: string, type: MessageType<unknown>, msg: unknown) {
      type.encode(msg as Partial<unknown>);
      onSent();
      return true;
    },
    instances: () => [],
  };
  return { node: node as unknown as ServiceNode, handlers };
}

/** Messages per second: batches of BATCH messages, each batch fully answered before the next. */
async function measureAsync(send: (i: number) => void, answered: () => number, ms: number): Promise<number> {
  const round = async (until: number) => {
    let i = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < until) {
      const target = answered() + BATCH;
      for (let c = 0; c < BATCH; c++) send(i++);
      while (answered() < target) await new Promise((r) => setImmediate(r));
    }
    return (i * 1000) / (performance.now() - t0);
  };
  await round(Math.max(50, ms / 5));
  return round(ms);
}

export async function run(): Promise<void> {
  const reg = new MessageRegistry().load(path.join(ROOT, 'examples', 'echo', 'echo.proto'));
  const Req = reg.type<EchoReq>('echo.EchoReq');
  const Resp = reg.type<EchoReq & { server: string }>('echo.EchoResp');
  const body = Req.encode({ text: 'hello world 12345', n: 7 });
  const peer: PeerInfo = { id: 'agent#0@dev', name: 'agent', addr: 0 };
  const ms = Math.round(DEFAULT_MS * 0.5);
  const handle = (req: EchoReq) => ({ text: req.text, n: req.n, server: '' });
  const cases: Array<{ name: string; measure: () => Promise<number> }> = [];

  // Baseline: decode, handle, encode the answer and its envelope, straight line.
  let sentBase = 0;
  cases.push({
    name: 'baseline: decode, handle, encode, envelope',
    measure: () =>
      measureAsync(
        (i) => {
          const req = Req.decode(body);
          G.ToClients.encode({ client_ids: [(i % BATCH) + 1], all: false, msg_id: Resp.id, seq: i + 1, body: Resp.encode(handle(req)) });
          sentBase++;
        },
        () => sentBase,
        ms,
      ),
  });
  const backends: Array<[string, boolean, (i: number) => number]> = [
    ['GatewayBackend, sync handler, 100 clients', false, (i) => (i % BATCH) + 1],
    ['GatewayBackend, async handler, 100 clients', true, (i) => (i % BATCH) + 1],
    ['GatewayBackend, async handler, 1 client, 100 queued', true, () => 1],
  ];
  for (const [name, isAsync, client] of backends) {
    let sent = 0;
    const { node, handlers } = stubNode(() => sent++);
    const backend = new GatewayBackend(node);
    backend.handle(Req, Resp, isAsync ? async (req) => handle(req) : handle);
    const onMessage = handlers.get(G.ClientMessage.name) as Handler;
    cases.push({ name, measure: () => measureAsync((i) => onMessage({ client_id: client(i), msg_id: Req.id, seq: i + 1, body, session: {} }, { peer }), () => sent, ms) });
  }
  // Rounds in turn, so a burst of other work on the machine hits every case alike; the best round counts.
  const best = cases.map(() => 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of cases.entries()) best[i] = Math.max(best[i] as number, await c.measure());
  }
  const baseNs = 1e9 / (best[0] as number);
  const rows = cases.map((c, i) => {
    const ns = 1e9 / (best[i] as number);
    return [c.name, fmtInt(best[i] as number), fmtNum(ns, 0), fmtNum(ns - baseNs, 0)];
  });
  printTable('gateway backend dispatch, in process (no sockets); best of 4 rounds', ['case', 'msgs/s', 'ns/msg', 'ns over baseline'], rows);
}

if (isMain(import.meta.url)) await run();
