/**
 * The demo's web page: log in over HTTP (POST /api/login), then play and chat
 * over one WebSocket to the agent that login picked, with the browser-safe
 * client SDK and the demo's generated messages. No framework: a handful of
 * elements looked up once and updated by hand.
 *
 * Bundled into demo/web/app.js by scripts/build-web.mjs.
 */
import { ClientError, GameClient, wsTransport } from '../../src/client/index.js';
import {
  ChatMsg,
  ChatSendReq,
  ChatSendResp,
  EarnGoldReq,
  EarnGoldResp,
  EnterGameReq,
  EnterGameResp,
  JoinChatReq,
  JoinChatResp,
  LevelUpReq,
  LevelUpResp,
  WhisperReq,
  WhisperResp,
  WhoReq,
  WhoResp,
  type Player,
} from '../gen/index.js';

/** What POST /api/login answers (src/login/server.ts). */
interface LoginReply {
  token: string;
  agent: { tcp: string; ws: string };
  account: string;
  created?: boolean;
}

/** The chat log keeps this many lines; older ones are dropped so a long session stays light. */
const MAX_LINES = 200;

function el<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`the page has no #${id} (${type.name})`);
  return node;
}

const ui = {
  login: el('login', HTMLElement),
  loginForm: el('login-form', HTMLFormElement),
  account: el('account', HTMLInputElement),
  password: el('password', HTMLInputElement),
  loginSubmit: el('login-submit', HTMLButtonElement),
  game: el('game', HTMLDivElement),
  logout: el('logout', HTMLButtonElement),
  name: el('player-name', HTMLElement),
  level: el('player-level', HTMLElement),
  gold: el('player-gold', HTMLElement),
  earn: el('earn-gold', HTMLButtonElement),
  levelUp: el('level-up', HTMLButtonElement),
  chatLog: el('chat-log', HTMLOListElement),
  chatForm: el('chat-form', HTMLFormElement),
  chatInput: el('chat-input', HTMLInputElement),
  chatSend: el('chat-send', HTMLButtonElement),
  conn: el('status-conn', HTMLElement),
  message: el('status-message', HTMLElement),
};

/** The client of the current session; undefined while logged out. */
let client: GameClient | undefined;
let me = '';

// ---- status line ------------------------------------------------------------

function setConn(text: string): void {
  ui.conn.textContent = text;
}

function say(text: string): void {
  ui.message.textContent = text;
  ui.message.classList.remove('error');
}

function showError(err: unknown): void {
  // A rule the game enforces ('application') is a message for the player as it is; anything else says what failed.
  const text = err instanceof ClientError && err.code !== 'application' ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  ui.message.textContent = text;
  ui.message.classList.add('error');
}

/** Runs a user action with its button disabled, so a double click cannot send it twice; failures go to the status line. */
async function busy(button: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function session(): GameClient {
  if (!client) throw new Error('not logged in');
  return client;
}

// ---- logging in and out -----------------------------------------------------

async function logIn(account: string, password: string): Promise<void> {
  say(`logging in as ${account}...`);
  const res = await fetch('/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ account, password }),
  });
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(errorOf(body) ?? `login failed: HTTP ${res.status}`);
  const reply = body as LoginReply;

  const c = new GameClient({
    transport: () => wsTransport(reply.agent.ws),
    clientName: 'gamemesh-demo-web',
    // A new connection is a new session on the agent: the game and chat must be told who we are again.
    onReconnect: (again) => enter(again, reply.token),
  });
  c.on(ChatMsg, showChat);
  c.onReconnecting((info) => setConn(`connection lost (${info.reason}); reconnecting in ${Math.ceil(info.delayMs / 1000)} s`));
  c.onReconnected(() => setConn(`connected to ${reply.agent.ws} as ${reply.account}`));
  c.onClose((info) => {
    if (client === c) leave(info.reason);
  });
  await c.connect();
  me = reply.account;
  ui.chatLog.replaceChildren();
  try {
    await enter(c, reply.token);
  } catch (err) {
    c.close();
    throw err;
  }

  client = c;
  ui.password.value = '';
  ui.login.hidden = true;
  ui.game.hidden = false;
  ui.logout.hidden = false;
  setConn(`connected to ${reply.agent.ws} as ${reply.account}`);
  say(reply.created ? `welcome, ${reply.account}: your account was created` : `welcome back, ${reply.account}`);
  ui.chatInput.focus();
}

/** Enters the game and the chat on this connection; both check the login token. */
async function enter(c: GameClient, token: string): Promise<void> {
  const { player } = await c.request(EnterGameReq, EnterGameResp, { token });
  showPlayer(player);
  const { online } = await c.request(JoinChatReq, JoinChatResp, { token });
  note(`joined the world chat: ${online} online`);
}

/** Back to the login form, after a logout or a connection that could not be restored. */
function leave(reason: string): void {
  client = undefined;
  ui.game.hidden = true;
  ui.logout.hidden = true;
  ui.login.hidden = false;
  setConn('not connected');
  if (reason === 'closed by the client') say('logged out');
  else showError(new Error(`disconnected: ${reason}`));
}

function errorOf(body: unknown): string | undefined {
  if (typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'string') return body.error;
  return undefined;
}

// ---- the player -------------------------------------------------------------

function showPlayer(player: Player | null | undefined): void {
  if (!player) throw new Error('the game answered without a player');
  ui.name.textContent = player.name;
  ui.level.textContent = String(player.level);
  ui.gold.textContent = String(player.gold);
}

async function earnGold(): Promise<void> {
  const { player, earned } = await session().request(EarnGoldReq, EarnGoldResp, {});
  showPlayer(player);
  say(`earned ${earned} gold`);
}

async function levelUp(): Promise<void> {
  const { player, cost } = await session().request(LevelUpReq, LevelUpResp, {});
  showPlayer(player);
  say(`level ${player?.level ?? '?'} reached for ${cost} gold`);
}

// ---- chat ---------------------------------------------------------------------

type LineKind = 'world' | 'whisper' | 'note';

function addLine(kind: LineKind, timeMs: number, parts: { who?: string; text: string }): void {
  const li = document.createElement('li');
  li.className = kind;
  li.dataset['kind'] = kind;
  const time = document.createElement('time');
  const at = new Date(timeMs);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
  li.append(time);
  if (parts.who !== undefined) {
    const who = document.createElement('b');
    who.textContent = parts.who;
    li.append(who);
  }
  // textContent, never innerHTML: chat text comes from other players.
  const text = document.createElement('span');
  text.textContent = parts.text;
  li.append(text);

  const log = ui.chatLog;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  log.append(li);
  while (log.children.length > MAX_LINES) log.firstElementChild?.remove();
  // Follow new lines unless the reader has scrolled up to read older ones.
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function note(text: string): void {
  addLine('note', Date.now(), { text });
}

function showChat(msg: ChatMsg): void {
  if (msg.channel === 'whisper') addLine('whisper', msg.time_ms, { who: `${msg.from} whispers`, text: msg.text });
  else addLine('world', msg.time_ms, { who: msg.from === me ? `${msg.from} (you)` : msg.from, text: msg.text });
}

/** One line of the chat input: a world message, `/w name text` or `/who`. */
async function chat(line: string): Promise<void> {
  const c = session();
  if (line === '/who') {
    const { names } = await c.request(WhoReq, WhoResp, {});
    note(`online: ${names.join(', ') || 'nobody'}`);
    return;
  }
  const whisper = /^\/w\s+(\S+)\s+(.+)$/s.exec(line);
  if (whisper) {
    const to = whisper[1] ?? '';
    const text = whisper[2] ?? '';
    const { delivered } = await c.request(WhisperReq, WhisperResp, { to, text });
    if (delivered) addLine('whisper', Date.now(), { who: `to ${to}`, text });
    else note(`${to} is not online`);
    return;
  }
  if (line.startsWith('/')) throw new Error(`unknown command ${line.split(/\s/, 1)[0] ?? ''}: use /w name text or /who`);
  // The message comes back as a ChatMsg push, like everyone else's.
  await c.request(ChatSendReq, ChatSendResp, { text: line });
}

// ---- wiring -------------------------------------------------------------------

ui.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void busy(ui.loginSubmit, () => logIn(ui.account.value.trim(), ui.password.value));
});
ui.logout.addEventListener('click', () => client?.close());
ui.earn.addEventListener('click', () => void busy(ui.earn, earnGold));
ui.levelUp.addEventListener('click', () => void busy(ui.levelUp, levelUp));
ui.chatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const line = ui.chatInput.value.trim();
  if (!line) return;
  void busy(ui.chatSend, async () => {
    await chat(line);
    // Cleared only once sent, so a message that failed can be sent again.
    if (ui.chatInput.value.trim() === line) ui.chatInput.value = '';
  });
});
ui.account.focus();
