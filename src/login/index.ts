export { startLogin, MAX_LOGIN_BODY, NO_AGENT_MESSAGE, type LoginOptions, type LoginServer, type LoginReply } from './server.js';
export {
  issueToken,
  verifyToken,
  loadJwtKey,
  keyFromSecret,
  TokenError,
  TOKEN_ALGORITHM,
  TOKEN_ISSUER,
  TOKEN_AUDIENCE,
  JWT_SECRET_KEY,
  JWT_SECRET_ENV,
  MIN_KEY_BYTES,
  MAX_TTL_SEC,
  type TokenClaims,
  type IssuedToken,
  type VerifiedToken,
  type TokenErrorCode,
  type IssueOptions,
  type LoadKeyOptions,
} from './tokens.js';
export { AccountStore, checkCredentials, accountKey, ACCOUNT_PREFIX, NAME_PATTERN, PASSWORD_MIN, PASSWORD_MAX, type AccountRecord, type AuthResult, type AccountStoreOptions } from './accounts.js';
export { AgentPicker, pickAgent, agentEndpoints, type AgentChoice, type AgentEndpoints, type AgentPickerOptions, type PickOptions } from './agents.js';
export { RateLimiter, type RateLimitOptions } from './rate-limit.js';
