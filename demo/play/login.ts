/**
 * Login for the terminal client and the bots: the SDK's own (src/client/login.ts),
 * with a longer default timeout, since bots log in hundreds at a time.
 */
import { login as sdkLogin, LoginError, type LoginAnswer } from '../../src/client/login.js';

export { LoginError };
export type LoginResult = LoginAnswer;

/** The login endpoint of a login URL; the page's URL and the bare origin both work. */
export function loginEndpoint(url: string): URL {
  try {
    return new URL('/api/login', url);
  } catch {
    throw new LoginError(0, `not a URL: ${JSON.stringify(url)} (expected e.g. http://127.0.0.1:8080)`);
  }
}

export function login(url: string | URL, account: string, password: string, timeoutMs = 30_000): Promise<LoginResult> {
  return sdkLogin(url, account, password, timeoutMs);
}
