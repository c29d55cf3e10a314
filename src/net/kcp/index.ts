export { CloseCode, ControlType, decodeControl, encodeControl, isControl, ModeByte, type Control } from './control.js';
export { CookieJar } from './cookie.js';
export { dialKcp, type KcpDialOptions, type KcpModeName } from './dial.js';
export { KcpEngine, KCP_DEFAULT_MTU, KCP_MAX_FRAGMENTS, NORMAL_MODE, TURBO_MODE, type KcpEngineOptions, type KcpMode } from './engine.js';
export { listenKcp, modeOf, type KcpListener, type KcpListenerStats, type KcpListenOptions } from './listener.js';
export { KcpSession, type KcpLink, type KcpSessionOptions, type KcpTuning } from './session.js';
export { CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS, KCP_OVERHEAD, parseDatagram } from './segment.js';
