/** The client side of POST /api/login (src/login/server.ts), for the terminal client and the bots. */

export interface LoginResult {
  readonly account: string;
  readonly token: string;
  readonly agent: { readonly tcp?: string; readonly ws?: string; readonly kcp?: string };
}

/** A login that did not give a token. `status` is the HTTP status, 0 when there was no answer at all. */
export class LoginError extends Error {
  override name = 'LoginError';
  constructor(
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

/** The login endpoint of a login URL; the page's URL and the bare origin both work. */
export function loginEndpoint(url: string): URL {
  try {
    return new URL('/api/login', url);
  } catch {
    throw new LoginError(0, `not a URL: ${JSON.stringify(url)} (expected e.g. http://127.0.0.1:8080)`);
  }
}

export async function login(url: string | URL, account: string, password: string, timeoutMs = 30_000): Promise<LoginResult> {
  const endpoint = typeof url === 'string' ? loginEndpoint(url) : url;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ account, password }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, "bad port"...) is in its cause.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new LoginError(0, `cannot reach ${endpoint.href}: ${why}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new LoginError(res.status, `${endpoint.href} answered ${res.status} with something other than JSON`);
  }
  if (!res.ok) {
    const error = typeof body === 'object' && body !== null && 'error' in body ? String(body.error) : text.slice(0, 200);
    throw new LoginError(res.status, error);
  }
  return parseReply(body, res.status);
}

function parseReply(body: unknown, status: number): LoginResult {
  const r = body as { account?: unknown; token?: unknown; agent?: { tcp?: unknown; ws?: unknown; kcp?: unknown } } | null;
  if (typeof r?.token !== 'string' || typeof r.account !== 'string' || typeof r.agent !== 'object' || r.agent === null) {
    throw new LoginError(status, 'the login answer lacks the token, account or agent');
  }
  const agent: { tcp?: string; ws?: string; kcp?: string } = {};
  if (typeof r.agent.tcp === 'string') agent.tcp = r.agent.tcp;
  if (typeof r.agent.ws === 'string') agent.ws = r.agent.ws;
  if (typeof r.agent.kcp === 'string') agent.kcp = r.agent.kcp;
  return { account: r.account, token: r.token, agent };
}
