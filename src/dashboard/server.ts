/**
 * `gamemesh dashboard`: a live web page of the cluster. One node:http
 * server: the page (src/dashboard/web, built into dist), GET /api/state,
 * GET /api/events (server-sent events: the state whenever it changes, at
 * most four times a second, and the KV keys that changed), GET /api/kv to
 * browse the KV, PUT /api/kv to change a value, GET /api/targets for
 * Prometheus' HTTP service discovery.
 *
 * Access: on a loopback address anyone local may look; beyond loopback
 * every request needs the cluster token (Basic auth with the token as the
 * password, which the browser asks for, or a bearer token), and without a
 * cluster token the dashboard refuses to bind there at all. Changing a
 * value always needs the token as a bearer token from the page, in a JSON
 * request from the page's own origin.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { DiscoveryError, type Discovery } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import { serveStatic, staticRoot } from '../login/static.js';
import { bearerToken, isLoopback, tokenMatches } from '../service/admin.js';
import { answerClientError, discard, HttpError, listenHttp, readJsonBody, sendJson } from '../service/http-util.js';
import { listKv } from './kv.js';
import { ClusterModel, type ServiceView } from './model.js';

export interface DashboardOptions {
  readonly discovery: Discovery;
  /** Shown on the page. */
  readonly sdaddr: string;
  readonly host: string;
  /** 0 lets the OS pick. */
  readonly port: number;
  /** The cluster token: reads the admin ports, guards edits (and everything, beyond loopback). */
  readonly token: string | undefined;
  readonly logger: Logger;
  /** How often admin ports are read (default 2 s). */
  readonly pollMs?: number;
  /** Every request needs the token, even on loopback (default: only beyond loopback). */
  readonly requireToken?: boolean;
}

export interface Dashboard {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** The built page: dist/src/dashboard/web (scripts/build-web.mjs puts it there). */
const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));
const MAX_EDIT_BODY = 1024 * 1024;
const EVENT_MIN_MS = 250;

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const open = isLoopback(opts.host) && !opts.requireToken;
  if (!open && !opts.token) throw new Error(`the dashboard may listen on ${opts.host}${opts.requireToken ? ' with --require-token' : ''} only with the cluster token (--token or GAMEMESH_TOKEN): beyond loopback it must not be reachable without it`);
  const root = await staticRoot(WEB_DIR).catch((err: Error) => {
    throw new Error(`${err.message}: build the page with node scripts/build-web.mjs (npm run build does)`);
  });
  const model = await new ClusterModel(opts.discovery, opts.sdaddr, opts.token, opts.logger, opts.pollMs).start();
  const streams = new Set<ServerResponse>();
  let pending: NodeJS.Timeout | undefined;
  let lastSent = 0;
  let changedKeys = new Set<string>();
  const push = () => {
    pending = undefined;
    lastSent = Date.now();
    const state = `event: state\ndata: ${JSON.stringify(model.snapshot())}\n\n`;
    const kv = changedKeys.size > 0 ? `event: kv\ndata: ${JSON.stringify([...changedKeys])}\n\n` : '';
    changedKeys = new Set();
    for (const res of streams) res.write(state + kv);
  };
  model.onChange((_what, keys) => {
    if (streams.size === 0) return;
    // Past 1000 keys the page is told about the first 1000; it refreshes the folders they are in.
    for (const k of keys ?? []) if (changedKeys.size < 1000) changedKeys.add(k);
    if (pending) return;
    pending = setTimeout(push, Math.max(0, EVENT_MIN_MS - (Date.now() - lastSent)));
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.on('error', () => {});
    if (!open) requireToken(req, opts.token as string, 'basic');
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const method = req.method ?? 'GET';
    switch (url.pathname) {
      case '/api/state':
        return sendJson(req, res, 200, model.snapshot());
      case '/api/events':
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
        res.write(`retry: 1000\nevent: state\ndata: ${JSON.stringify(model.snapshot())}\n\n`);
        streams.add(res);
        req.socket.setTimeout(0);
        res.on('close', () => streams.delete(res));
        return;
      case '/api/targets':
        // Prometheus HTTP service discovery (http_sd_configs): every admin port in the registry.
        return sendJson(req, res, 200, prometheusTargets(model.snapshot().services));
      case '/api/kv':
        if (method === 'GET') return sendJson(req, res, 200, listKv(model.store.list(), url.searchParams.get('prefix') ?? ''));
        if (method === 'PUT') return sendJson(req, res, 200, await edit(req, opts));
        discard(req);
        throw new HttpError(405, `${method} is not allowed on /api/kv; use GET or PUT`, { allow: 'GET, PUT' });
      default:
        if (url.pathname.startsWith('/api/')) throw new HttpError(404, `no endpoint ${url.pathname}`);
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed here`, { allow: 'GET, HEAD' });
        return serveStatic(req, res, root, url.pathname);
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return sendJson(req, res, err.status, { error: err.message }, err.headers);
      opts.logger.error({ err, url: req.url }, 'dashboard request failed');
      sendJson(req, res, 500, { error: `internal error: ${(err as Error).message}` });
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // the event streams stay open
  server.maxConnections = 256;
  server.on('clientError', answerClientError);
  await listenHttp(server, opts.port, opts.host);
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/`;
  opts.logger.info({ url, auth: open ? 'token for edits' : 'token for everything' }, 'dashboard listening');
  return {
    url,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        clearTimeout(pending);
        model.stop();
        for (const res of streams) res.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The token as a bearer token, or (when `basic`) as the password of Basic auth; else 401. */
function requireToken(req: IncomingMessage, token: string, how: 'basic' | 'bearer'): void {
  let got = bearerToken(req);
  const h = req.headers['authorization'];
  if (got === undefined && how === 'basic' && typeof h === 'string') {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h);
    const decoded = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '';
    if (decoded.includes(':')) got = decoded.slice(decoded.indexOf(':') + 1);
  }
  if (got !== undefined && tokenMatches(token, got)) return;
  discard(req);
  const challenge = how === 'basic' ? 'Basic realm="gamemesh dashboard (password: the cluster token)", charset="UTF-8"' : 'Bearer realm="gamemesh dashboard"';
  throw new HttpError(401, got === undefined ? 'the cluster token is needed' : 'wrong token', { 'www-authenticate': challenge });
}

async function edit(req: IncomingMessage, opts: DashboardOptions): Promise<{ key: string; revision: number }> {
  if (!opts.token) {
    discard(req);
    throw new HttpError(403, 'this cluster has no token, so no one can be told apart: the dashboard does not edit the KV (set one with --token or GAMEMESH_TOKEN)');
  }
  // Bearer only: a browser never attaches it on its own, so another site cannot make the page's visitor edit.
  requireToken(req, opts.token, 'bearer');
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    discard(req);
    throw new HttpError(403, 'edits come from the dashboard page only');
  }
  const body = await readJsonBody(req, MAX_EDIT_BODY);
  const { key, value } = (body ?? {}) as { key?: unknown; value?: unknown };
  if (typeof key !== 'string' || key === '' || key.length > 4096) throw new HttpError(400, 'expected {"key": "a/b/c", "value": "text"} with a key of 1-4096 characters');
  if (typeof value !== 'string') throw new HttpError(400, 'value must be a string');
  if (key.startsWith('_svc/')) throw new HttpError(400, 'registrations (_svc/) belong to the services; the dashboard does not write them');
  let revision: number;
  try {
    revision = await opts.discovery.put(key, value);
  } catch (err) {
    if (!(err instanceof DiscoveryError)) throw err;
    throw new HttpError(err.code === 'too_large' || err.code === 'bad_request' ? 400 : 503, `discovery refused the write: ${err.message}`);
  }
  opts.logger.info({ key, bytes: Buffer.byteLength(value) }, 'KV value changed from the dashboard');
  return { key, revision };
}

/** Prometheus HTTP SD: one target group per admin port, labelled with the service, its id and group. */
export function prometheusTargets(services: readonly ServiceView[]): Array<{ targets: string[]; labels: Record<string, string> }> {
  return services
    .filter((s) => s.admin !== '')
    .map((s) => ({ targets: [s.admin], labels: { gamemesh_service: s.name, gamemesh_id: s.id, gamemesh_group: s.group } }));
}
