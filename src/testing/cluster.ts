/**
 * A whole cluster in the test's own process: the built-in discovery (in
 * memory or on a temporary datafile), the user's services, gateways
 * (agents) and, when asked, the login service, all on 127.0.0.1 with
 * OS-picked ports. Every part has a name, so a test can take one down
 * (`kill`) and bring it back (`restart`); `stop()` leaves no socket, timer
 * or file behind. Nothing here depends on a test runner: node:test and
 * vitest call it the same way.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { GameClient, type GameClientOptions } from '../client/client.js';
import { wsTransport } from '../client/ws-transport.js';
import { tcpTransport } from '../client-node/tcp-transport.js';
import { DiscoveryServer } from '../discovery/server.js';
import { Agent } from '../gateway/agent.js';
import { RouteTable, type Route, type RouteTableJSON } from '../gateway/routes.js';
import { parseLevelSpec } from '../log/levels.js';
import { applyLevels } from '../log/registry.js';
import { startLogin, type LoginServer } from '../login/server.js';
import type { NodeConfig } from '../service/node.js';
import { ServiceNode } from '../service/node.js';
import { login as loginOver } from '../client/login.js';
import { TestClusterError } from './errors.js';

/** Anything a service start returns: a ServiceNode, or an object that stops the service. */
export interface Stoppable {
  stop(): Promise<void>;
}

/** The config a service gets: pass it to `new ServiceNode({ name, config })` as is. */
export type TestServiceConfig = Partial<NodeConfig> & { readonly sdaddr: string; readonly token: string };

/** One of the user's services. */
export interface TestService {
  /** Unique in the cluster; `kill` and `restart` take it. */
  readonly name: string;
  /** Starts one instance (and resolves once it is started); called again by `restart`. */
  start(config: TestServiceConfig): Promise<Stoppable>;
}

/** The login service of a test cluster. */
export interface TestLoginOptions {
  /** Register unknown accounts on their first login (the default: tests log in with any name). */
  readonly demo?: boolean;
  /** Serve this folder's files, as `gamemesh login --static` does. */
  readonly staticDir?: string;
  /** Token lifetime in seconds. Default 3600. */
  readonly ttlSec?: number;
}

/** What startTestCluster starts. */
export interface TestClusterOptions {
  /** The user's services, started in this order after discovery. */
  readonly services?: readonly TestService[];
  /** How many gateways (agents). Default 1; 0 starts none. */
  readonly agents?: number;
  /** The gateway route table: `routes` from `gamemesh gen`'s index.ts, routes.json's content, or a RouteTable. Without it the agents read the KV. */
  readonly routes?: readonly Route[] | RouteTableJSON | RouteTable;
  /** Start the login service too; `client()` then logs in first. */
  readonly login?: boolean | TestLoginOptions;
  /** `memory` (default), or `datafile`: a temporary file that survives `restart('discovery')` and is removed by `stop()`. */
  readonly discovery?: 'memory' | 'datafile';
  /** The cluster secret. Default: a random one. */
  readonly token?: string;
  /** Log level of every part (process-wide, as loggers are). Default `warn`; `silent` hides all. */
  readonly logLevel?: string;
  /** How long a service's stop may drain. Default 1000 ms, so a test never waits the production 8 s. */
  readonly shutdownTimeoutMs?: number;
}

/** Options of cluster.client(): the login account, the transport, and any GameClient option. */
export interface TestClientOptions extends Omit<GameClientOptions, 'transport' | 'token'> {
  /** Login account (with login on). Default `player1`, `player2`, ... */
  readonly account?: string;
  /** Default `password`; demo mode registers the account with it on its first login. */
  readonly password?: string;
  /** Default `ws`. */
  readonly transport?: 'ws' | 'tcp';
  /** Which agent to connect to, without login (index). Default 0. With login, the login picks. */
  readonly agent?: number;
}

/** A client from `cluster.client()`: connected, and knowing who it logged in as. */
export interface TestClient extends GameClient {
  /** The login account, '' without login. */
  readonly account: string;
  /** The JWT login gave ('' without login); it is also in the handshake, so backends see it as `session.token`. */
  readonly loginToken: string;
}

/** A running test cluster: its addresses, clients, and the parts to kill and restart. */
export interface TestCluster {
  /** host:port of the discovery server: give it to what the harness does not start itself. */
  readonly sdaddr: string;
  /** The cluster secret. */
  readonly token: string;
  /** Of the login service, e.g. http://127.0.0.1:40123/; undefined without login. */
  readonly loginUrl: string | undefined;
  /** Running agents, in order (a killed one is missing until it is restarted). */
  readonly agents: readonly Agent[];
  /** Every part's name: `discovery`, the services, `agent-1`..., `login`. */
  readonly names: readonly string[];
  /** A connected client, through login when login is on. Closed by `stop()`. */
  client(options?: TestClientOptions): Promise<TestClient>;
  /**
   * Takes one part down at once: its connections drop (clients of an agent
   * are kicked), and discovery forgets what it held in memory. In one
   * process this is a stop without a drain window, not a SIGKILL; use
   * `gamemesh up` and real processes for those.
   */
  kill(name: string): Promise<void>;
  /** Starts a killed part again (or kills and starts a running one): same ports for discovery and agents, so clients and nodes find them again. */
  restart(name: string): Promise<void>;
  /** Whether a part is running. */
  isRunning(name: string): boolean;
  /** Stops everything in reverse order and removes the temporary files. Idempotent. */
  stop(): Promise<void>;
}

interface Part {
  readonly name: string;
  running: Stoppable | undefined;
  start(): Promise<Stoppable>;
}

/** Starts the cluster; on a failure, what was started is stopped before the error is thrown. */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  applyLevels(parseLevelSpec(options.logLevel ?? 'warn'));
  const token = options.token ?? randomBytes(24).toString('base64url');
  const drainMs = options.shutdownTimeoutMs ?? 1000;
  const given = options.routes;
  const routes = given === undefined || given instanceof RouteTable ? given : RouteTable.parse(Array.isArray(given) ? { version: 1, routes: given } : given);
  const agentCount = options.agents ?? 1;
  if (!Number.isInteger(agentCount) || agentCount < 0) throw new TestClusterError(`agents must be a whole number >= 0, got ${String(agentCount)}`);
  const services = options.services ?? [];
  const names = new Set(['discovery', 'login']);
  for (let i = 1; i <= agentCount; i++) names.add(`agent-${i}`);
  for (const s of services) {
    if (names.has(s.name)) throw new TestClusterError(`the service name ${JSON.stringify(s.name)} is taken (${[...names].join(', ')} are the harness's own, and names must be unique)`);
    names.add(s.name);
  }

  const tempDir = options.discovery === 'datafile' ? mkdtempSync(path.join(tmpdir(), 'gamemesh-test-')) : undefined;
  let discoPort = 0;
  const parts: Part[] = [];
  const clients = new Set<GameClient>();
  const agents: Array<Agent | undefined> = [];
  let loginServer: LoginServer | undefined;
  let sdaddr = '';
  const config = (extra: Partial<NodeConfig> = {}): TestServiceConfig => ({ sdaddr, token, listen: '127.0.0.1:0', ...extra });

  parts.push({
    name: 'discovery',
    running: undefined,
    async start() {
      const server = await new DiscoveryServer({
        host: '127.0.0.1',
        port: discoPort,
        token,
        graceMs: 500,
        ...(tempDir ? { datafile: path.join(tempDir, 'discovery.db'), fsync: false } : {}),
      }).start();
      discoPort = server.address.port;
      sdaddr = `127.0.0.1:${discoPort}`;
      return server;
    },
  });
  for (const svc of services) parts.push({ name: svc.name, running: undefined, start: () => svc.start(config()) });
  for (let i = 0; i < agentCount; i++) {
    let ports: { tcpPort: number; wsPort: number } = { tcpPort: 0, wsPort: 0 };
    parts.push({
      name: `agent-${i + 1}`,
      running: undefined,
      async start() {
        const agent = await new Agent({
          node: { config: config({ svcindex: i }), shutdownTimeoutMs: drainMs },
          host: '127.0.0.1',
          ...ports,
          ...(routes ? { routes } : {}),
        }).start();
        ports = { tcpPort: Number((agent.tcpAddress ?? '').split(':')[1]), wsPort: Number(new URL(agent.wsUrl ?? 'ws://x:0').port) };
        agents[i] = agent;
        return {
          stop: async () => {
            agents[i] = undefined;
            await agent.stop();
          },
        };
      },
    });
  }
  if (options.login) {
    const login = options.login === true ? {} : options.login;
    let port = 0;
    parts.push({
      name: 'login',
      running: undefined,
      async start() {
        const node = await new ServiceNode({ name: 'login', config: config(), shutdownTimeoutMs: drainMs }).start();
        try {
          const server = await startLogin({ node, host: '127.0.0.1', port, demo: login.demo ?? true, staticDir: login.staticDir, ttlSec: login.ttlSec, rateLimit: { burst: 10_000, perSec: 10_000 } });
          port = server.port;
          loginServer = server;
          return {
            stop: async () => {
              loginServer = undefined;
              await server.stop();
              await node.stop();
            },
          };
        } catch (err) {
          await node.stop();
          throw err;
        }
      },
    });
  }

  const find = (name: string): Part => {
    const part = parts.find((p) => p.name === name);
    if (!part) throw new TestClusterError(`no part named ${JSON.stringify(name)} in this cluster (it has ${parts.map((p) => p.name).join(', ')})`);
    return part;
  };
  const down = async (part: Part) => {
    const running = part.running;
    part.running = undefined;
    await running?.stop();
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const c of clients) c.close();
      clients.clear();
      const errors: unknown[] = [];
      for (const part of [...parts].reverse()) await down(part).catch((err: unknown) => errors.push(err));
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      if (errors.length > 0) throw errors[0];
    })());

  try {
    for (const part of parts) part.running = await part.start();
    // An agent with no route table yet, or not linked to the services, would refuse the first client.
    await linked(agents, services.map((s) => s.name));
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }

  let counter = 0;
  const cluster: TestCluster = {
    get sdaddr() {
      return sdaddr;
    },
    token,
    get loginUrl() {
      return loginServer?.url;
    },
    get agents() {
      return agents.filter((a): a is Agent => a !== undefined);
    },
    names: parts.map((p) => p.name),
    async client(opts = {}) {
      if (stopping) throw new TestClusterError('the cluster is stopped');
      const { account: wanted, password = 'password', transport = 'ws', agent: index = 0, ...clientOpts } = opts;
      let address: { ws?: string; tcp?: string };
      let account = '';
      let loginToken = '';
      if (options.login) {
        if (!loginServer) throw new TestClusterError('the login service is not running');
        const reply = await loginOver(loginServer.url, wanted ?? `player${++counter}`, password);
        ({ account, token: loginToken } = reply);
        address = reply.agent;
      } else {
        const agent = agents[index];
        if (!agent) throw new TestClusterError(`agent ${index} is not running`);
        address = { ws: agent.wsUrl, tcp: agent.tcpAddress };
      }
      const url = transport === 'ws' ? address.ws : address.tcp;
      if (!url) throw new TestClusterError(`the agent has no ${transport} address`);
      const tcpAt = (addr: string) => {
        const i = addr.lastIndexOf(':');
        return tcpTransport(addr.slice(0, i), Number(addr.slice(i + 1)));
      };
      const client = new GameClient({
        ...clientOpts,
        transport: transport === 'ws' ? () => wsTransport(url, { WebSocket }) : () => tcpAt(url),
        ...(loginToken ? { token: loginToken } : {}),
      }) as TestClient;
      Object.defineProperties(client, { account: { value: account }, loginToken: { value: loginToken } });
      clients.add(client);
      client.onClose(() => {
        if (client.state === 'closed') clients.delete(client);
      });
      await client.connect();
      return client;
    },
    async kill(name) {
      await down(find(name));
    },
    async restart(name) {
      const part = find(name);
      if (stopping) throw new TestClusterError('the cluster is stopped');
      await down(part);
      part.running = await part.start();
      if (name.startsWith('agent-')) await linked([agents[Number(name.slice(6)) - 1]], services.map((s) => s.name));
    },
    isRunning(name) {
      return find(name).running !== undefined;
    },
    stop,
  };
  return cluster;
}

/** Until every agent is linked to one instance of every service its routes name (the first client's message would otherwise find none). */
async function linked(agents: ReadonlyArray<Agent | undefined>, services: readonly string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = agents.flatMap((a) => {
      if (!a) return [];
      const routed = new Set(a.routeTable.services());
      return services.filter((s) => routed.has(s) && a.node.instances(s).length === 0).map((s) => `${a.node.id} -> ${s}`);
    });
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new TestClusterError(`not linked within ${timeoutMs} ms: ${missing.join(', ')} (does each service register under the name it was given?)`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
