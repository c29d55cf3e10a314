/**
 * Which KV keys are secrets. A secret is served only to clients that proved
 * they hold the cluster token; a built-in server without a token therefore
 * serves secrets to nobody and stores none (docs/protocol.md, "Secrets").
 *
 * A key is a secret when one of its path segments is `secret` or `secrets`
 * (`secret/payments/key`, `config/secrets/x`), or when its last segment ends
 * in `_secret`, `-secret` or `.secret` (`config/login/jwt_secret`).
 */
export function isSecretKey(key: string): boolean {
  return /(^|\/)secrets?(\/|$)/.test(key) || /[_.-]secret$/.test(key);
}

export const NO_TOKEN_SECRET_MESSAGE =
  'is a secret, and this discovery server has no cluster token (--token or GAMEMESH_TOKEN), so it keeps no secrets: start it with a token, or give the secret to the service another way';
