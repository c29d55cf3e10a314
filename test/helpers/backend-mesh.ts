/**
 * An in-process agent and backends the test defines itself, over real
 * sockets on 127.0.0.1: for the mailbox, identity and restore tests. The
 * backend can be stopped and started again under the same service id, as a
 * restarted process would be.
 */
import { encodeTcpFrame } from '../../src/client/frame.js';
import { ClientMessages } from '../../src/client/messages.js';
import { Agent } from '../../src/gateway/agent.js';
import { GatewayBackend, type GatewayBackendOptions } from '../../src/gateway/backend.js';
import { RouteTable } from '../../src/gateway/routes.js';
import { ServiceNode } from '../../src/service/node.js';
import { EchoReq, EchoResp } from './echo.js';
import { emptyType, RawTcpClient, type RawFrame } from './gateway.js';
import { silent, startDiscoveryServer, type Defer } from './mesh.js';
import { waitFor } from './proc.js';

/** Routed "pass" to the backend; for handlers registered with { concurrent: true }. */
export const Peek = emptyType(1005, 'test.Peek');

export const BACKEND_ROUTES = RouteTable.parse({
  version: 1,
  routes: [
    { msgId: EchoReq.id, name: 'echo.EchoReq', service: 'echo', rule: 'pass' },
    { msgId: EchoResp.id, name: 'echo.EchoResp', service: 'echo', rule: 'auth' },
    { msgId: Peek.id, name: 'test.Peek', service: 'echo', rule: 'pass' },
  ],
});

export interface BackendMesh {
  readonly sdaddr: string;
  readonly agent: Agent;
  /** Starts the "echo" backend (index 0, so the same id every time) and waits until the agent has it. */
  startBackend(setup: (backend: GatewayBackend, node: ServiceNode) => void, options?: GatewayBackendOptions): Promise<{ node: ServiceNode; backend: GatewayBackend }>;
  /** A handshaken raw TCP client of the agent. */
  client(): Promise<RawTcpClient>;
}

export async function startBackendMesh(defer: Defer, agentOptions: { maxMsgsPerSec?: number } = {}): Promise<BackendMesh> {
  const { addr: sdaddr } = await startDiscoveryServer(defer, 200);
  const agent = await new Agent({ node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 }, routes: BACKEND_ROUTES, heartbeatSec: 5, maxMsgsPerSec: agentOptions.maxMsgsPerSec ?? 10_000 }).start();
  defer(() => agent.stop());
  const [host, port] = (agent.tcpAddress as string).split(':') as [string, string];
  return {
    sdaddr,
    agent,
    async startBackend(setup, options) {
      const node = new ServiceNode({ name: 'echo', config: { sdaddr, listen: '127.0.0.1:0' }, logger: silent, shutdownTimeoutMs: 3000 });
      defer(() => node.stop());
      const backend = new GatewayBackend(node, options);
      setup(backend, node);
      await node.start();
      await waitFor(() => agent.node.isConnected(node.id) && node.instances('agent').length > 0, 5000, 'agent and backend linked');
      return { node, backend };
    },
    async client() {
      const c = await RawTcpClient.connect(host, Number(port));
      defer(() => c.destroy());
      await c.handshake();
      return c;
    },
  };
}

/** Encodes `count` EchoReqs with seqs from `firstSeq` into one buffer: one socket write. */
export function echoBurst(texts: readonly string[], firstSeq: number): Uint8Array {
  return Buffer.concat(texts.map((text, i) => encodeTcpFrame(EchoReq.id, firstSeq + i, EchoReq.encode({ text, n: i }))));
}

/** What came back for one seq: the echo's reply, or the Error frame's code and message. */
export type Outcome = { ok: true; text: string; n: number } | { ok: false; code: string; message: string };

export function outcome(frame: RawFrame): Outcome {
  if (frame.msgId === ClientMessages.Error.id) {
    const e = ClientMessages.Error.decode(frame.body);
    return { ok: false, code: e.code, message: e.message };
  }
  const r = EchoResp.decode(frame.body);
  return { ok: true, text: r.text, n: r.n };
}

/** Waits for an answer to every seq and returns them in seq order. */
export async function answers(client: RawTcpClient, seqs: readonly number[], timeoutMs: number): Promise<Outcome[]> {
  const want = new Set(seqs);
  await waitFor(() => client.frames.filter((f) => want.has(f.seq)).length >= seqs.length, timeoutMs, `answers to ${seqs.length} requests`);
  return seqs.map((seq) => outcome(client.frames.find((f) => f.seq === seq) as RawFrame));
}
