/**
 * The demo's web page: log in over HTTP (POST /api/login), then play and chat
 * over one WebSocket to the agent that login picked, with the browser-safe
 * client SDK and the demo's generated messages. No framework: a handful of
 * elements looked up once and updated by hand.
 *
 * Bundled into demo/web/app.js by scripts/build-web.mjs.
 */
import { ClientError, GameClient, wsTransport, type Room } from '../../src/client/index.js';
import {
  ArenaInput,
  ArenaState,
  ArenaWelcome,
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
  type ArenaPlayer,
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
  arenaInfo: el('arena-info', HTMLElement),
  arenaCanvas: el('arena-canvas', HTMLCanvasElement),
  arenaPlayers: el('arena-players', HTMLOListElement),
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
  // After a reconnect the room takes its seat back by itself; only a lost seat needs a new join.
  if (!arena || arena.room.left) void joinArena(c, token);
}

/** Back to the login form, after a logout or a connection that could not be restored. */
function leave(reason: string): void {
  client = undefined;
  arena = undefined;
  held.clear();
  drawArena([]);
  ui.arenaInfo.textContent = 'not joined';
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

// ---- the arena ---------------------------------------------------------------

/** The arena room this page plays in, and what it last told the server. */
interface Arena {
  readonly room: Room;
  width: number;
  height: number;
  seq: number;
  dx: number;
  dy: number;
}

let arena: Arena | undefined;
const held = new Set<string>();
const KEYS: Readonly<Record<string, readonly [number, number]>> = {
  ArrowUp: [0, -1],
  KeyW: [0, -1],
  ArrowDown: [0, 1],
  KeyS: [0, 1],
  ArrowLeft: [-1, 0],
  KeyA: [-1, 0],
  ArrowRight: [1, 0],
  KeyD: [1, 0],
};

/** joinOrCreate: any arena room with a free seat, or a new one; the token names the player to the arena service. */
async function joinArena(c: GameClient, token: string): Promise<void> {
  ui.arenaInfo.textContent = 'joining...';
  let room: Room;
  try {
    room = await c.joinOrCreate('arena', { token }, { service: 'arena' });
  } catch (err) {
    ui.arenaInfo.textContent = `not joined (${err instanceof ClientError ? `${err.code}: ${err.message}` : String(err)})`;
    return;
  }
  if (client !== c && client !== undefined) return void room.leave().catch(() => {});
  const a: Arena = { room, width: ui.arenaCanvas.width, height: ui.arenaCanvas.height, seq: 0, dx: 0, dy: 0 };
  arena = a;
  room.onMessage(ArenaWelcome, (w) => {
    a.width = w.width;
    a.height = w.height;
    ui.arenaCanvas.width = w.width;
    ui.arenaCanvas.height = w.height;
    ui.arenaInfo.textContent = `room ${room.id} on ${room.host}, ${w.tick_hz} ticks/s`;
    ui.arenaInfo.dataset['room'] = room.id;
  });
  room.onMessage(ArenaState, (s) => drawArena(s.players));
  room.onLeave((info) => {
    if (arena === a) arena = undefined;
    ui.arenaInfo.textContent = `left the arena (${info.code}: ${info.reason})`;
    delete ui.arenaInfo.dataset['room'];
  });
}

/** The direction the held keys make; sent only when it changes. */
function steerArena(): void {
  const a = arena;
  if (!a) return;
  let dx = 0;
  let dy = 0;
  for (const code of held) {
    const [x, y] = KEYS[code] ?? [0, 0];
    dx += x;
    dy += y;
  }
  dx = Math.sign(dx);
  dy = Math.sign(dy);
  if (dx === a.dx && dy === a.dy) return;
  a.dx = dx;
  a.dy = dy;
  a.room.send(ArenaInput, { dx, dy, seq: ++a.seq });
}

function drawArena(players: readonly ArenaPlayer[]): void {
  const cv = ui.arenaCanvas;
  const g = cv.getContext('2d');
  if (!g) return;
  g.fillStyle = '#10182b';
  g.fillRect(0, 0, cv.width, cv.height);
  g.strokeStyle = '#1e2a45';
  g.lineWidth = 1;
  for (let x = 40; x < cv.width; x += 40) g.strokeRect(x, 0, 0, cv.height);
  for (let y = 40; y < cv.height; y += 40) g.strokeRect(0, y, cv.width, 0);
  const mine = arena?.room.seat;
  const items: HTMLLIElement[] = [];
  g.font = '13px system-ui, sans-serif';
  g.textAlign = 'center';
  for (const p of players) {
    const color = `#${(p.color ?? 0).toString(16).padStart(6, '0')}`;
    g.beginPath();
    g.arc(p.x, p.y, 12, 0, Math.PI * 2);
    g.fillStyle = color;
    g.fill();
    if (p.seat === mine) {
      g.lineWidth = 3;
      g.strokeStyle = '#fff';
      g.stroke();
    }
    g.fillStyle = '#dfe6f5';
    // Above the disc, or below it at the top edge.
    g.fillText(p.name, p.x, p.y < 34 ? p.y + 28 : p.y - 18);
    // The same positions as text: for screen readers, and for the browser test to read.
    const li = document.createElement('li');
    li.textContent = `${p.name} (${Math.round(p.x)}, ${Math.round(p.y)})`;
    li.dataset['name'] = p.name;
    li.dataset['x'] = String(Math.round(p.x));
    li.dataset['y'] = String(Math.round(p.y));
    li.style.setProperty('--dot', color);
    if (p.seat === mine) li.className = 'me';
    items.push(li);
  }
  ui.arenaPlayers.replaceChildren(...items);
}

/** Keys typed into a field are text, not moves. */
function typing(ev: KeyboardEvent): boolean {
  return ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
}

window.addEventListener('keydown', (ev) => {
  if (!arena || typing(ev) || !(ev.code in KEYS)) return;
  ev.preventDefault();
  held.add(ev.code);
  steerArena();
});
window.addEventListener('keyup', (ev) => {
  if (!held.delete(ev.code)) return;
  steerArena();
});
// A key released while the window is not focused sends no keyup: stop rather than run on.
window.addEventListener('blur', () => {
  held.clear();
  steerArena();
});
drawArena([]);

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
