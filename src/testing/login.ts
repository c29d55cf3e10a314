/** The client side of POST /api/login (src/login/server.ts), for `cluster.client()`. */

export class TestClusterError extends Error {
  override name = 'TestClusterError';
}

export interface LoginAnswer {
  readonly account: string;
  readonly token: string;
  readonly agent: { readonly ws?: string; readonly tcp?: string };
}

export async function loginOver(url: string, account: string, password: string, timeoutMs = 10_000): Promise<LoginAnswer> {
  const endpoint = new URL('/api/login', url);
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ account, password }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let body: { account?: unknown; token?: unknown; agent?: { ws?: unknown; tcp?: unknown }; error?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new TestClusterError(`login answered ${res.status} with something other than JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) throw new TestClusterError(`login of ${JSON.stringify(account)} failed (${res.status}): ${String(body.error ?? text.slice(0, 200))}`);
  if (typeof body.token !== 'string' || typeof body.account !== 'string' || typeof body.agent !== 'object' || body.agent === null) {
    throw new TestClusterError('the login answer lacks the token, account or agent');
  }
  const agent: { ws?: string; tcp?: string } = {};
  if (typeof body.agent.ws === 'string') agent.ws = body.agent.ws;
  if (typeof body.agent.tcp === 'string') agent.tcp = body.agent.tcp;
  return { account: body.account, token: body.token, agent };
}
