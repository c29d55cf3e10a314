/**
 * An in-process gateway setup for client tests: a discovery server, an echo
 * backend behind GatewayBackend, and an Agent (TCP, WebSocket and KCP) routing to it, all on
 * 127.0.0.1 and stopped after the test. And, for the acceptance tests with
 * real processes: `gamemesh agent` and the gw-backend fixture as processes,
 * route pushes through the CLI, process memory, and a raw TCP client.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeTcpFrame, StreamFrameDecoder } from '../../src/client/frame.js';
import { ClientMessages, type HandshakeAck } from '../../src/client/messages.js';
import { Agent, type AgentOptions } from '../../src/gateway/agent.js';
import { GatewayBackend, type ClientRef } from '../../src/gateway/backend.js';
import { RouteTable, type RouteTableJSON } from '../../src/gateway/routes.js';
import { ServiceNode } from '../../src/service/node.js';
import type { MessageType } from '../../src/wire/message-type.js';
import { EchoReq, EchoResp } from './echo.js';
import { startDiscoveryServer, silent, type Defer } from './mesh.js';
import { BIN, FIXTURES, runCli, spawnNode, waitFor, type Cleanup, type Proc } from './proc.js';

/** Routed to the backend ("pass") but with no handler there. */
export const NO_HANDLER_ID = 1003;
/** In no route: the agent kicks a client that sends it. */
export const UNROUTED_ID = 1999;

/** A message type with an empty body and any id, for ids the echo .proto lacks. */
export function emptyType(id: number, name: string): MessageType<Record<string, never>> {
  return { id, name, options: {}, encode: () => new Uint8Array(0), decode: () => ({}) };
}

export const ROUTES = RouteTable.parse({
  version: 1,
  routes: [
    { msgId: EchoReq.id, name: 'echo.EchoReq', service: 'echo', rule: 'pass' },
    // EchoResp doubles as the request of an "auth" route: only a client bound by `login:NAME` may send it.
    { msgId: EchoResp.id, name: 'echo.EchoResp', service: 'echo', rule: 'auth' },
    { msgId: NO_HANDLER_ID, name: 'nohandler', service: 'echo', rule: 'pass' },
  ],
});

export interface GatewayMesh {
  sdaddr: string;
  backendNode: ServiceNode;
  backend: GatewayBackend;
  agent: Agent;
  /** The client behind each `whoami:KEY` request, for pushes. */
  clients: Map<string, ClientRef>;
  /** Stops the agent (kicking its clients with code 1) and starts a new one on the same ports. */
  restartAgent(betweenMs?: number): Promise<Agent>;
}

function agentOptions(sdaddr: string, extra: AgentOptions = {}): AgentOptions {
  return { node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 }, routes: ROUTES, heartbeatSec: 1, kcpPort: 0, ...extra };
}

/** Waits until the agent and the backend are linked both ways. */
async function linked(agent: Agent, backendNode: ServiceNode): Promise<void> {
  await waitFor(() => agent.node.instances('echo').length > 0 && backendNode.instances('agent').length > 0, 5000, 'agent and backend linked');
}

/**
 * The backend answers EchoReq by its text: `login:NAME` binds the client
 * with {user: NAME}; `whoami:KEY` records the client under KEY; `throw:MSG`
 * fails with MSG; `sleep:N` answers after N ms; anything else is echoed.
 * EchoResp (auth) answers "hello USER".
 */
export async function startGatewayMesh(defer: Defer): Promise<GatewayMesh> {
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const backendNode = new ServiceNode({ name: 'echo', config: { sdaddr, listen: '127.0.0.1:0' }, logger: silent, shutdownTimeoutMs: 500 });
  defer(() => backendNode.stop());
  const backend = new GatewayBackend(backendNode);
  const clients = new Map<string, ClientRef>();
  backend.handle(EchoReq, EchoResp, async (req, ctx) => {
    const [verb, arg = ''] = req.text.split(/:(.*)/s);
    if (verb === 'login') await ctx.bind({ user: arg });
    if (verb === 'whoami') clients.set(arg, { agent: ctx.agent, id: ctx.id });
    if (verb === 'throw') throw new Error(arg);
    if (verb === 'sleep') await sleep(Number(arg));
    return { text: req.text, n: req.n, server: backendNode.id };
  });
  backend.handle(EchoResp, EchoResp, (_req, ctx) => ({ text: `hello ${ctx.session['user'] ?? '?'}`, server: backendNode.id }));
  await backendNode.start();

  let agent = await new Agent(agentOptions(sdaddr)).start();
  let stopped = false;
  defer(() => {
    stopped = true;
    return agent.stop();
  });
  await linked(agent, backendNode);

  const mesh: GatewayMesh = {
    sdaddr,
    backendNode,
    backend,
    get agent() {
      return agent;
    },
    clients,
    async restartAgent(betweenMs = 0) {
      const [host, port] = (agent.tcpAddress ?? '').split(':');
      const wsPort = Number(new URL(agent.wsUrl ?? '').port);
      const kcpPort = Number((agent.kcpAddress ?? '').split(':')[1]);
      await agent.stop();
      if (betweenMs > 0) await sleep(betweenMs);
      // A test that failed meanwhile has run its cleanup: an agent started now would never be stopped.
      if (stopped) throw new Error('the mesh was stopped during restartAgent');
      agent = await new Agent(agentOptions(sdaddr, { host, tcpPort: Number(port), wsPort, kcpPort })).start();
      await linked(agent, backendNode);
      return agent;
    },
  };
  return mesh;
}

// ---- real processes ---------------------------------------------------------

/** A `gamemesh agent` process and the addresses from its ready line. */
export interface AgentProc {
  proc: Proc;
  id: string;
  host: string;
  tcpPort: number;
  wsUrl: string;
  /** When started with --kcp-port. */
  kcpPort?: number;
}

/** Spawns `gamemesh agent` on 127.0.0.1 (both transports, OS-picked ports; KCP too with `--kcp-port 0`); killed after the test. */
export async function spawnAgent(t: Cleanup, sdaddr: string, args: readonly string[] = []): Promise<AgentProc> {
  const proc = spawnNode(t, BIN, ['agent', '--sdaddr', sdaddr, '--host', '127.0.0.1', '--listen', '127.0.0.1:0', '--loglevel', 'warn', ...args], 'gamemesh agent');
  const m = await proc.waitForStdout(/agent (\S+) listening tcp=(\S+):(\d+) ws=(\S+?)(?: kcp=\S+:(\d+))?\n/, 10_000);
  return { proc, id: m[1] as string, host: m[2] as string, tcpPort: Number(m[3]), wsUrl: m[4] as string, ...(m[5] ? { kcpPort: Number(m[5]) } : {}) };
}

/** A test/fixtures/gw-backend.ts process. */
export interface BackendProc {
  proc: Proc;
  id: string;
}

/** Spawns the gw-backend fixture (service "gw" unless --name says otherwise); killed after the test. */
export async function spawnGwBackend(t: Cleanup, sdaddr: string, args: readonly string[] = []): Promise<BackendProc> {
  const proc = spawnNode(t, path.join(FIXTURES, 'gw-backend.js'), ['--sdaddr', sdaddr, '--listen', '127.0.0.1:0', '--loglevel', 'warn', ...args], 'gw-backend');
  const m = await proc.waitForStdout(/gw-backend (\S+) ready\n/, 10_000);
  return { proc, id: m[1] as string };
}

/** Writes `table` to a file in `dir` and uploads it with `gamemesh routes push`. */
export async function pushRoutes(sdaddr: string, dir: string, table: RouteTableJSON): Promise<void> {
  const file = path.join(dir, `routes-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(table));
  const res = await runCli(['routes', 'push', file, '--sdaddr', sdaddr]);
  if (res.code !== 0) throw new Error(`gamemesh routes push failed (${String(res.code)}): ${res.stderr}`);
  if (!/pushed \d+ route\(s\)/.test(res.stdout)) throw new Error(`unexpected output of gamemesh routes push: ${res.stdout}`);
}

/** Resident memory of a process in bytes (Linux: VmRSS in /proc/PID/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** A frame the raw client received. */
export interface RawFrame {
  msgId: number;
  seq: number;
  body: Uint8Array;
}

/**
 * A hand-driven TCP client of an agent: writes any bytes (so it can send
 * what the SDK never would), records the frames it receives, can stop
 * reading, and says when the agent closed the connection.
 */
export class RawTcpClient {
  readonly frames: RawFrame[] = [];
  /** Bytes read from the socket. */
  received = 0;
  readonly closed: Promise<void>;
  closedAt: number | undefined;
  private readonly decoder = new StreamFrameDecoder((msgId, seq, body) => this.frames.push({ msgId, seq, body: body.slice() }), 16 * 1024 * 1024);
  private decoding = true;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (!this.decoding) return;
      try {
        this.decoder.push(chunk);
      } catch {
        // What the agent sends is not under test here; keep counting bytes.
        this.decoding = false;
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now();
        resolve();
      }),
    );
  }

  static connect(host: string, port: number): Promise<RawTcpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawTcpClient(socket));
      });
    });
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  send(msgId: number, seq: number, body: Uint8Array = new Uint8Array(0)): void {
    this.socket.write(encodeTcpFrame(msgId, seq, body));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Sends a Handshake and waits for the HandshakeAck. */
  async handshake(timeoutMs = 3000): Promise<HandshakeAck> {
    this.send(ClientMessages.Handshake.id, 1, ClientMessages.Handshake.encode({ version: 1, token: '', client: 'raw-tcp' }));
    const frame = await this.waitFrame((f) => f.msgId === ClientMessages.HandshakeAck.id && f.seq === 1, timeoutMs, 'HandshakeAck');
    return ClientMessages.HandshakeAck.decode(frame.body);
  }

  /** The first frame received so far (or later) that matches. */
  async waitFrame(match: (f: RawFrame) => boolean, timeoutMs: number, what: string): Promise<RawFrame> {
    await waitFor(() => this.frames.some(match), timeoutMs, what);
    return this.frames.find(match) as RawFrame;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
