/**
 * The login service's HTTP side: POST /api/login checks an account's
 * password (registering it first in demo mode), and answers with a JWT and
 * the least-loaded gateway's address, so clients need only the login URL.
 * The same server serves the demo's static web page.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiscoveryError } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import type { ServiceNode } from '../service/node.js';
import { AccountStore, checkCredentials } from './accounts.js';
import { AgentPicker, type AgentStrategy } from './agents.js';
import { answerClientError, HttpError, discard, listenHttp, readJsonBody, sendJson } from '../service/http-util.js';
import { RateLimiter, type RateLimitOptions } from './rate-limit.js';
import { serveStatic, staticRoot } from './static.js';
import { issueToken, loadJwtKey } from './tokens.js';
import { countLogin, loginResult } from './metrics.js';

/** The largest login request body accepted (8 KiB). */
export const MAX_LOGIN_BODY = 8 * 1024;
/** The login's answer (503) when no gateway can take a player. */
export const NO_AGENT_MESSAGE = 'no gateway (agent) is available right now';
/** Where pages find the browser build of the client SDK (scripts/build-web.mjs makes it), whatever folder is served. */
export const CLIENT_SDK_PATH = '/gamemesh/client.js';
/** This file runs as dist/src/login/server.js; the bundle is dist/browser/. */
const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'browser');
let sdkRoot: Promise<string> | undefined;
const sdkDir = () => (sdkRoot ??= staticRoot(SDK_DIR)).catch(() => {
  sdkRoot = undefined;
  throw new HttpError(404, 'the browser build of the client SDK is missing (npm run build makes it)');
});

/** Options of the login service: where it listens, what it serves, the tokens it issues, its rate limit. */
export interface LoginOptions {
  /** A started node; the login uses its discovery, group and logger, and does not stop it. */
  node: ServiceNode;
  /** 0 lets the OS pick. Default 8080. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Files served for GET requests outside /api/ (index.html for a directory). */
  staticDir?: string;
  /** Register unknown accounts on their first login. */
  demo?: boolean;
  /** Token lifetime. Default 3600. */
  ttlSec?: number;
  /** The JWT secret; else GAMEMESH_JWT_SECRET, else the KV (see loadJwtKey). */
  jwtSecret?: string;
  /** Login attempts per client IP. Default a burst of 20, then 5 per second. */
  rateLimit?: RateLimitOptions;
  /** Link rule of the agent groups players are sent to. Default the node's group. */
  agentGroup?: string;
  /** How agents are ranked: least-loaded (default) or least-memory; an agent above its memory threshold is skipped either way. */
  agentStrategy?: AgentStrategy;
  logger?: Logger;
}

/** A running login service. */
export interface LoginServer {
  readonly host: string;
  readonly port: number;
  /** e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  /** Closes the HTTP server and its connections, and stops watching agents; the node is left running. */
  stop(): Promise<void>;
}

/** The JSON answer of a successful POST /api/login. */
export interface LoginReply {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** The pomelo addresses only when the agent has pomelo ports. */
  agent: { tcp?: string; ws?: string; kcp?: string; pomelo_ws?: string; pomelo_tcp?: string };
  account: string;
  /** The account was registered by this login (demo mode). */
  created: boolean;
}

/** Starts the login service's HTTP endpoint (POST /api/login, GET /api/health, the static page) on a started node. */
export async function startLogin(options: LoginOptions): Promise<LoginServer> {
  const { node } = options;
  const log = options.logger ?? node.log;
  const root = options.staticDir ? await staticRoot(options.staticDir) : undefined;
  const key = await loadJwtKey(node.discovery, { secret: options.jwtSecret });
  const picker = await AgentPicker.open(node.discovery, {
    group: options.agentGroup ?? node.config.svcgroup,
    available: (id) => node.nodeState(id).available,
    visible: (d) => node.canSee(d),
    strategy: options.agentStrategy,
  });
  const ctx: Handler = {
    log,
    root,
    key,
    picker,
    ttlSec: options.ttlSec ?? 3600,
    accounts: new AccountStore(node.discovery, { demo: options.demo ?? false }),
    limiter: new RateLimiter(options.rateLimit ?? { burst: 20, perSec: 5 }),
  };
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => fail(ctx, req, res, err));
  });
  // Bounds for slow or stuck clients; a login request is small.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5000;
  server.on('clientError', answerClientError);
  try {
    await listenHttp(server, options.port ?? 8080, options.host ?? '127.0.0.1');
  } catch (err) {
    picker.close();
    throw err;
  }
  const addr = server.address();
  const host = typeof addr === 'object' && addr ? addr.address : (options.host ?? '127.0.0.1');
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  log.info({ url, demo: options.demo ?? false, static: root }, 'login listening');
  let stopped: Promise<void> | undefined;
  return {
    host,
    port,
    url,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        picker.close();
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

interface Handler {
  readonly log: Logger;
  readonly root: string | undefined;
  readonly key: Uint8Array;
  readonly picker: AgentPicker;
  readonly ttlSec: number;
  readonly accounts: AccountStore;
  readonly limiter: RateLimiter;
}

async function handle(ctx: Handler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.on('error', () => {});
  const pathname = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method ?? 'GET';
  if (pathname === '/api/login') {
    if (method !== 'POST') throw methodNotAllowed(req, 'POST');
    const started = performance.now();
    try {
      const reply = await login(ctx, req);
      countLogin(loginResult(200, reply.created), started);
      return sendJson(req, res, 200, reply);
    } catch (err) {
      countLogin(loginResult(err instanceof HttpError ? err.status : err instanceof DiscoveryError ? 503 : 500), started);
      throw err;
    }
  }
  if (pathname === '/api/health') {
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(req, 'GET, HEAD');
    return sendJson(req, res, 200, { ok: true, agents: ctx.picker.agents().length, available: ctx.picker.withRoom() });
  }
  if (pathname.startsWith('/api/')) throw new HttpError(404, `no endpoint ${pathname}`);
  if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(req, 'GET, HEAD');
  if (pathname === CLIENT_SDK_PATH || pathname === `${CLIENT_SDK_PATH}.map`) return serveStatic(req, res, await sdkDir(), pathname.replace('/gamemesh/client', '/gamemesh-client'));
  if (!ctx.root) throw new HttpError(404, 'not found (no static files are served)');
  await serveStatic(req, res, ctx.root, pathname);
}

async function login(ctx: Handler, req: IncomingMessage): Promise<LoginReply> {
  const ip = req.socket.remoteAddress ?? 'unknown';
  const waitMs = ctx.limiter.take(ip);
  if (waitMs > 0) {
    discard(req);
    const sec = Math.ceil(waitMs / 1000);
    throw new HttpError(429, `too many login attempts; retry in ${sec} s`, { 'retry-after': String(sec) });
  }
  const body = await readJsonBody(req, MAX_LOGIN_BODY);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'expected a JSON object {"account": ..., "password": ...}');
  const { account, password } = body as { account?: unknown; password?: unknown };
  const why = checkCredentials(account, password);
  if (why !== undefined) throw new HttpError(400, why);
  const name = account as string;
  // Checked before the (deliberately slow) password hash, so an outage does not cost CPU per retry.
  if (ctx.picker.withRoom() === 0) throw noAgent(ctx.picker);
  const auth = await ctx.accounts.authenticate(name, password as string);
  // One message for both, so the reply does not tell which accounts exist.
  if (!auth.ok) throw new HttpError(401, 'wrong account or password');
  if (auth.created) ctx.log.info({ account: name }, 'account registered');
  const agent = ctx.picker.pick();
  if (!agent) throw noAgent(ctx.picker);
  const { token, expiresAt } = await issueToken({ sub: name, name }, ctx.key, { ttlSec: ctx.ttlSec });
  ctx.log.debug({ account: name, agent: agent.id }, 'login');
  const pomelo = { ...(agent.pomelo_ws ? { pomelo_ws: agent.pomelo_ws } : {}), ...(agent.pomelo_tcp ? { pomelo_tcp: agent.pomelo_tcp } : {}) };
  return { token, expiresAt, agent: { tcp: agent.tcp, ws: agent.ws, kcp: agent.kcp, ...pomelo }, account: name, created: auth.created };
}

/** 503, saying why when agents refuse for their memory (placement by memory). */
function noAgent(picker: AgentPicker): HttpError {
  const why = picker.memoryRefusals();
  return new HttpError(503, why.length > 0 ? `${NO_AGENT_MESSAGE}: ${why.join('; ')}` : NO_AGENT_MESSAGE, { 'retry-after': '5' });
}

function methodNotAllowed(req: IncomingMessage, allow: string): HttpError {
  discard(req);
  return new HttpError(405, `${req.method ?? '?'} is not allowed here; use ${allow}`, { allow });
}

function fail(ctx: Handler, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (err instanceof HttpError) return sendJson(req, res, err.status, { error: err.message }, err.headers);
  if (err instanceof DiscoveryError && (err.code === 'unavailable' || err.code === 'timeout' || err.code === 'closed')) {
    ctx.log.warn({ err: err.message }, 'discovery is unavailable');
    return sendJson(req, res, 503, { error: 'the account store is unavailable right now' }, { 'retry-after': '1' });
  }
  ctx.log.error({ err, url: req.url }, 'login request failed');
  sendJson(req, res, 500, { error: 'internal error' });
}
