/**
 * One bot: logs in, enters the game and the chat, then plays until the run
 * ends: mostly work for gold, a level up when it can pay for one, now and
 * then stats, a whisper, a world chat line or /who. One request at a time,
 * then a pause, like a person clicking. It knows its player's state from
 * the answers and checks each answer against the rules, so a lost or
 * doubled update shows up as a 'state_mismatch' error.
 */
import { ClientError, type GameClient } from '../../src/client/index.js';
import { earnAmount, levelCost } from '../game/rules.js';
import { ChatMsg, ChatSendReq, ChatSendResp, EarnGoldReq, EarnGoldResp, EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp, WhisperReq, WhisperResp, WhoReq, WhoResp, type Player } from '../gen/index.js';
import { login, LoginError, type LoginResult } from '../play/login.js';
import { playerClient, playerOf, type TransportKind } from '../play/player.js';
import type { Limit } from './limit.js';
import type { Kind, Recorder } from './stats.js';

/** When the run ends: unknown (Infinity) until every bot is in, then that moment plus the duration. */
export interface RunClock {
  endAt: number;
}

export interface BotPlan {
  readonly name: string;
  readonly password: string;
  readonly loginUrl: URL;
  readonly transport: TransportKind;
  /** performance.now() time of the login. */
  readonly startAt: number;
  readonly clock: RunClock;
  /** Logins in flight at once, across all bots. */
  readonly logins: Limit;
  /** Called once, when this bot is playing or has failed to get that far. */
  readonly onIn: () => void;
  readonly requestTimeoutMs: number;
  readonly loginTimeoutMs: number;
  /** Pause after each answer: min + random * spread ms. */
  readonly pauseMs: { readonly min: number; readonly spread: number };
  /** Names whispers go to. */
  readonly peers: readonly string[];
  readonly random: () => number;
}

/** Never rejects: every failure is counted in `rec`. */
export async function runBot(plan: BotPlan, rec: Recorder): Promise<void> {
  let inCalled = false;
  const onIn = () => {
    if (!inCalled) plan.onIn();
    inCalled = true;
  };
  try {
    await sleep(plan.startAt - performance.now());
    const account = await plan.logins.run(() => logIn(plan, rec));
    if (account) await new Bot(plan, rec, account, onIn).play();
  } finally {
    onIn();
  }
}

async function logIn(plan: BotPlan, rec: Recorder): Promise<LoginResult | undefined> {
  const started = performance.now();
  try {
    const account = await login(plan.loginUrl, plan.name, plan.password, plan.loginTimeoutMs);
    rec.ok('login', started);
    return account;
  } catch (err) {
    rec.error('login', err instanceof LoginError ? err.code : 'login_failed', (err as Error).message);
    return undefined;
  }
}

class Bot {
  /** The server's state as the answers told it; undefined after a request whose outcome is unknown. */
  private player: Player | undefined;
  private gameUp = true;
  private closing = false;
  /** From a lost connection until the SDK's reconnect (which enters the game again) is done. */
  private recovering = false;
  private said = 0;

  constructor(
    private readonly plan: BotPlan,
    private readonly rec: Recorder,
    private readonly account: LoginResult,
    private readonly onIn: () => void,
  ) {}

  async play(): Promise<void> {
    let client: GameClient;
    try {
      client = playerClient(this.account, this.plan.transport, {
        relogin: () => login(this.plan.loginUrl, this.plan.name, this.plan.password, this.plan.loginTimeoutMs),
        requestTimeoutMs: this.plan.requestTimeoutMs,
        onError: (err, where) => this.rec.error('connect', 'client_error', `${where}: ${(err as Error).message}`),
        onReentered: (e) => (this.player = e.player),
      });
    } catch (err) {
      return this.rec.error('connect', 'no_transport', (err as Error).message);
    }
    this.watch(client);
    try {
      if (!(await this.timed('connect', () => client.connect()))) return;
      const game = await this.timed('enter game', () => client.request(EnterGameReq, EnterGameResp, { token: this.account.token }));
      if (!game) return;
      this.player = playerOf(game.player, this.account.account);
      if (!(await this.timed('join chat', () => client.request(JoinChatReq, JoinChatResp, { token: this.account.token })))) return;
      this.rec.playing++;
      this.onIn();
      const clock = this.plan.clock;
      try {
        while (performance.now() < clock.endAt && client.state !== 'closed') {
          // While the SDK reconnects, requests would only fail with 'closed'; while it re-enters the game, with 'unauthenticated'.
          if (client.state === 'open' && !this.recovering) await this.step(client);
          const { min, spread } = this.plan.pauseMs;
          await sleep(Math.min(min + this.plan.random() * spread, clock.endAt - performance.now()));
        }
      } finally {
        this.rec.playing--;
      }
    } finally {
      this.closing = true;
      client.close();
    }
  }

  private watch(client: GameClient): void {
    client.on(ChatMsg, () => this.rec.pushes++);
    client.onBackendStatus((s) => {
      if (s.service === 'game') this.gameUp = s.up;
      this.rec.notices[s.up ? 'up' : 'down']++;
    });
    client.onKick((kick) => this.rec.error('connect', `kicked_${kick.code}`, kick.reason));
    client.onReconnecting((r) => {
      this.recovering = true;
      if (r.attempt === 1) this.rec.error('connect', 'connection_lost', r.reason);
    });
    client.onReconnected(() => (this.recovering = false));
    client.onClose((info) => {
      if (!this.closing) this.rec.error('connect', 'disconnected', info.reason);
    });
  }

  private async step(client: GameClient): Promise<void> {
    const r = this.plan.random();
    const p = this.player;
    // A game that is down would only answer 'unavailable'; whispers still work meanwhile.
    if (!this.gameUp) return this.whisper(client);
    if (!p) return this.sync(client);
    if (p.gold >= levelCost(p.level) && r < 0.5) return this.levelUp(client, p);
    // World chat reaches every player, so it is the rare one.
    if (r < 0.006) return this.chat(client);
    if (r < 0.012) return this.who(client);
    if (r < 0.06) return this.whisper(client);
    if (r < 0.09) return this.stats(client, p);
    return this.earn(client, p);
  }

  private async chat(client: GameClient): Promise<void> {
    await this.timed('chat', () => client.request(ChatSendReq, ChatSendResp, { text: `gg from ${this.account.account} #${++this.said}` }));
  }

  private async who(client: GameClient): Promise<void> {
    await this.timed('who', () => client.request(WhoReq, WhoResp, {}));
  }

  private async whisper(client: GameClient): Promise<void> {
    const peers = this.plan.peers;
    const to = peers[Math.floor(this.plan.random() * peers.length)] ?? this.account.account;
    // delivered: false only means that player is not online (yet): not an error.
    await this.timed('whisper', () => client.request(WhisperReq, WhisperResp, { to, text: `psst #${++this.said}` }));
  }

  private async earn(client: GameClient, p: Player): Promise<void> {
    const r = await this.game('earn gold', () => client.request(EarnGoldReq, EarnGoldResp, {}));
    if (!r) return;
    const got = playerOf(r.player, p.name);
    const earned = earnAmount(p.level);
    this.check('earn gold', r.earned === earned && got.level === p.level && got.gold === p.gold + earned, `earned ${earned} from ${show(p)}`, got);
  }

  private async levelUp(client: GameClient, p: Player): Promise<void> {
    const r = await this.game('level up', () => client.request(LevelUpReq, LevelUpResp, {}));
    if (!r) return;
    const got = playerOf(r.player, p.name);
    const cost = levelCost(p.level);
    this.check('level up', r.cost === cost && got.level === p.level + 1 && got.gold === p.gold - cost, `level ${p.level + 1} for ${cost} from ${show(p)}`, got);
  }

  private async stats(client: GameClient, p: Player): Promise<void> {
    const r = await this.game('stats', () => client.request(StatsReq, StatsResp, {}));
    if (r) this.check('stats', sameState(playerOf(r.player, p.name), p), show(p), playerOf(r.player, p.name));
  }

  /** After an unanswered game request: take the server's word for the state. */
  private async sync(client: GameClient): Promise<void> {
    const r = await this.game('stats', () => client.request(StatsReq, StatsResp, {}));
    if (r) this.player = playerOf(r.player, this.account.account);
  }

  /** A game request: on failure the outcome is unknown (it may have been applied), so the state is read again. */
  private async game<T>(kind: Kind, send: () => Promise<T>): Promise<T | undefined> {
    const r = await this.timed(kind, send);
    if (r === undefined) this.player = undefined;
    return r;
  }

  private check(kind: Kind, ok: boolean, expected: string, got: Player): void {
    if (!ok) this.rec.error(kind, 'state_mismatch', `${this.account.account}: expected ${expected}, the server says ${show(got)}`);
    this.player = got;
  }

  private async timed<T>(kind: Kind, send: () => Promise<T>): Promise<T | undefined> {
    const started = performance.now();
    try {
      const r = await send();
      this.rec.ok(kind, started);
      return r;
    } catch (err) {
      this.rec.error(kind, err instanceof ClientError ? err.code : 'exception', (err as Error).message);
      return undefined;
    }
  }
}

function sameState(a: Player, b: Player): boolean {
  return a.level === b.level && a.gold === b.gold;
}

function show(p: Player): string {
  return `level ${p.level} with ${p.gold} gold`;
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
