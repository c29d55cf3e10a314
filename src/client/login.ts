/**
 * The client side of the login service's POST /api/login
 * (src/login/server.ts, docs/protocol.md): an account and password in, the
 * token and the gateway to connect to out. Browser-safe (fetch only).
 */

/** What a successful login answers. */
export interface LoginAnswer {
  readonly account: string;
  /** The JWT: pass it as GameClientOptions.token, and backends find it in the session as `token`. */
  readonly token: string;
  /** The gateway (agent) login picked, by transport. */
  readonly agent: { readonly ws?: string; readonly tcp?: string; readonly kcp?: string };
  /** The account was registered by this login (demo mode). */
  readonly created: boolean;
}

/** A login that gave no token. `status` is the HTTP status, 0 when no answer came at all. */
export class LoginError extends Error {
  override name = 'LoginError';
  constructor(
    /** The HTTP status; 0 when the login service could not be reached. */
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** Short and stable, for counting errors by kind: login_401, login_429, login_unreachable... */
  get code(): string {
    return this.status === 0 ? 'login_unreachable' : `login_${this.status}`;
  }
}

/** Logs in at `url` (the login service's origin or any page under it). */
export async function login(url: string | URL, account: string, password: string, timeoutMs = 10_000): Promise<LoginAnswer> {
  let endpoint: URL;
  try {
    endpoint = new URL('/api/login', url);
  } catch {
    throw new LoginError(0, `not a URL: ${JSON.stringify(url)} (expected e.g. http://127.0.0.1:8080)`);
  }
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ account, password }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED...) is in its cause.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new LoginError(0, `cannot reach ${endpoint.href}: ${why}`);
  }
  const text = await res.text();
  let body: { account?: unknown; token?: unknown; created?: unknown; agent?: { ws?: unknown; tcp?: unknown; kcp?: unknown } | null; error?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new LoginError(res.status, `${endpoint.href} answered ${res.status} with something other than JSON`);
  }
  if (!res.ok) throw new LoginError(res.status, typeof body.error === 'string' ? body.error : text.slice(0, 200));
  if (typeof body.token !== 'string' || typeof body.account !== 'string' || typeof body.agent !== 'object' || body.agent === null) {
    throw new LoginError(res.status, 'the login answer lacks the token, account or agent');
  }
  const agent: { ws?: string; tcp?: string; kcp?: string } = {};
  for (const key of ['ws', 'tcp', 'kcp'] as const) {
    const value = body.agent[key];
    if (typeof value === 'string') agent[key] = value;
  }
  return { account: body.account, token: body.token, agent, created: body.created === true };
}
