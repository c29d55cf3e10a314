/**
 * The admin HTTP port every service (and the discovery server) opens with
 * `--admin HOST:PORT`: GET /metrics and GET /status here, and whatever else
 * registers a route (the upgrade issue's POST /drain and /stop). Plain
 * node:http, JSON in and out.
 *
 * Every request must carry the cluster token as `Authorization: Bearer
 * <token>`, compared in constant time; anything else gets 401. A cluster
 * without a token cannot authenticate anyone, so its admin port may only
 * listen on a loopback address (127.0.0.0/8, ::1, localhost), where it is
 * open to local processes; binding beyond loopback without a token is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log/index.js';
import { enableMetrics } from '../observe/metrics.js';
import { answerClientError, discard, HttpError, listenHttp, readJsonBody, sendJson } from './http-util.js';

export { HttpError as AdminError };

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface AdminRequest {
  readonly method: AdminMethod;
  /** The path without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly raw: IncomingMessage;
  /** The JSON body, at most `maxBody` bytes (HttpError 400 or 413 otherwise). Read it at most once. */
  json(): Promise<unknown>;
}

/** What a handler returns: a JSON value (status 200), or a reply with a status, a body and headers. */
export type AdminReply =
  | { readonly status?: number; readonly json: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status?: number; readonly text: string; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> };

export type AdminHandler = (req: AdminRequest) => AdminReply | Promise<AdminReply>;

export interface AdminOptions {
  /** HOST:PORT; port 0 lets the OS pick; a bare :PORT means 127.0.0.1. */
  listen: string;
  /** The cluster token; undefined or '' means the cluster has none (loopback only, open). */
  token: string | undefined;
  logger: Logger;
  /** Largest request body accepted (default 64 KiB). */
  maxBody?: number;
  /** Connections at once (default 64). */
  maxConnections?: number;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost|\[::1\])$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/** Parses `--admin`'s HOST:PORT (an empty host is 127.0.0.1); throws a readable error. */
export function parseAdminAddr(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]*):(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[2]) > 65535) throw new HttpError(400, `bad admin address ${JSON.stringify(text)}: expected HOST:PORT (port 0: the OS picks)`);
  return { host: (m[1] as string).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
}

/** Constant-time comparison of two secrets of any lengths (both are hashed first). */
export function tokenMatches(expected: string, got: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(got).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers['authorization'];
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m ? (m[1] as string) : undefined;
}

/**
 * The admin HTTP server. Routes are exact paths; a path with routes for
 * other methods answers 405 with `allow`; an unknown path 404; a handler
 * that throws an HttpError answers with its status; anything else 500 (logged).
 */
export class AdminServer {
  private readonly routes = new Map<string, Map<AdminMethod, AdminHandler>>();
  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly opts: AdminOptions,
  ) {}

  /** host:port as registered in the node's meta (`admin`). */
  get address(): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get url(): string {
    return `http://${this.address}/`;
  }

  /** Starts listening; GET /metrics is there from the start, and metrics are turned on for the process. */
  static async start(opts: AdminOptions): Promise<AdminServer> {
    const { host, port } = parseAdminAddr(opts.listen);
    if (!opts.token && !isLoopback(host)) {
      throw new HttpError(400, `the admin port may listen on ${host} only with a cluster token (--token or GAMEMESH_TOKEN): without one it cannot authenticate requests; use 127.0.0.1 or set a token`);
    }
    // The server exists before the AdminServer that serves it (which needs the bound port).
    const ready: { admin?: AdminServer } = {};
    const server = createServer((req, res) => {
      if (ready.admin) void ready.admin.handle(req, res);
      else res.destroy();
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5000;
    server.maxConnections = opts.maxConnections ?? 64;
    server.on('clientError', answerClientError);
    await listenHttp(server, port, host);
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? addr : { address: host, port };
    const admin = new AdminServer(server, bound.address, bound.port, opts);
    ready.admin = admin;
    const registry = await enableMetrics();
    admin.route('GET', '/metrics', async () => ({ text: await registry.metrics(), contentType: registry.contentType }));
    opts.logger.info({ admin: admin.url, auth: Boolean(opts.token) }, 'admin port listening');
    return admin;
  }

  /** Adds a route; a second handler for the same method and path is an error. */
  route(method: AdminMethod, path: string, handler: AdminHandler): this {
    if (!path.startsWith('/')) throw new TypeError(`admin route ${JSON.stringify(path)} must start with /`);
    let byMethod = this.routes.get(path);
    if (!byMethod) this.routes.set(path, (byMethod = new Map()));
    if (byMethod.has(method)) throw new TypeError(`admin route ${method} ${path} is already registered`);
    byMethod.set(method, handler);
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.on('error', () => {});
    try {
      if (this.opts.token) {
        const got = bearerToken(req);
        if (got === undefined || !tokenMatches(this.opts.token, got)) {
          discard(req);
          throw new HttpError(401, got === undefined ? 'this admin port needs the cluster token: Authorization: Bearer <token>' : 'wrong token', { 'www-authenticate': 'Bearer realm="gamemesh admin"' });
        }
      }
      const url = new URL(req.url ?? '/', 'http://admin');
      const byMethod = this.routes.get(url.pathname);
      if (!byMethod) {
        discard(req);
        throw new HttpError(404, `no admin endpoint ${url.pathname}; try ${[...this.routes.keys()].sort().join(', ')}`);
      }
      const method = (req.method === 'HEAD' ? 'GET' : req.method) as AdminMethod;
      const handler = byMethod.get(method);
      if (!handler) {
        discard(req);
        const allow = [...byMethod.keys()].join(', ');
        throw new HttpError(405, `${req.method ?? '?'} is not allowed on ${url.pathname}; use ${allow}`, { allow });
      }
      let read = false;
      const reply = await handler({
        method,
        path: url.pathname,
        query: url.searchParams,
        raw: req,
        json: () => {
          if (read) return Promise.reject(new TypeError('the body was read already'));
          read = true;
          return readJsonBody(req, this.opts.maxBody ?? 64 * 1024);
        },
      });
      if (!read && method !== 'GET') discard(req);
      if ('json' in reply) return sendJson(req, res, reply.status ?? 200, reply.json, reply.headers);
      res.writeHead(reply.status ?? 200, { 'content-type': reply.contentType, 'content-length': Buffer.byteLength(reply.text), 'cache-control': 'no-store', ...reply.headers });
      res.end(req.method === 'HEAD' ? undefined : reply.text);
    } catch (err) {
      if (err instanceof HttpError) return sendJson(req, res, err.status, { error: err.message }, err.headers);
      this.opts.logger.error({ err, url: req.url }, 'admin request failed');
      sendJson(req, res, 500, { error: `internal error: ${(err as Error).message}` });
    }
  }
}
