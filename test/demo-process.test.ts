/**
 * The demo cluster as real processes (demo/cluster.json through
 * startCluster, on free ports, its data in a temp dir): the load bots (over
 * WebSocket and over KCP), the terminal client, forged tokens, and kill -9 of the game service with the
 * players' acknowledged progress checked across the restart.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { SignJWT } from 'jose';
import { ClientError, type BackendStatus, type GameClient } from '../src/client/index.js';
import { issueToken, keyFromSecret } from '../src/login/tokens.js';
import { earnAmount, levelCost } from '../demo/game/rules.js';
import { ChatMsg, ChatSendReq, ChatSendResp, EarnGoldReq, EarnGoldResp, EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp, WhisperReq, WhisperResp, WhoReq, WhoResp, type Player } from '../demo/gen/index.js';
import { login } from '../demo/play/login.js';
import { enterWorld, playerClient, playerOf } from '../demo/play/player.js';
import { startDemo } from './helpers/demo.js';
import { cleanupStack, type Defer } from './helpers/mesh.js';
import { BIN, Proc, waitFor } from './helpers/proc.js';

const SECRET = 'demo-process-test-jwt-secret-0123456789';
const KEY = keyFromSecret(SECRET);

interface Tester {
  readonly name: string;
  readonly token: string;
  readonly client: GameClient;
  player: Player;
  readonly notices: BackendStatus[];
  readonly chat: string[];
}

/** A player the test drives itself: logged in, in the game and in chat. */
async function joinAs(defer: Defer, url: string, name: string): Promise<Tester> {
  const account = await login(url, name, 'test-password');
  const client = playerClient(account, 'ws', { requestTimeoutMs: 3000 });
  defer(() => client.close());
  const notices: BackendStatus[] = [];
  const chat: string[] = [];
  client.onBackendStatus((s) => notices.push(s));
  client.on(ChatMsg, (m) => chat.push(`${m.channel}:${m.from}:${m.text}`));
  await client.connect();
  const entered = await enterWorld(client, account.token);
  return { name, token: account.token, client, player: entered.player, notices, chat };
}

async function stats(p: Tester): Promise<Player> {
  return playerOf((await p.client.request(StatsReq, StatsResp, {})).player, p.name);
}

async function rejects(p: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ClientError, `${what}: ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  });
}

function bot(defer: Defer, url: string, args: readonly string[]): Proc {
  const proc = new Proc('bot', process.execPath, [BIN, 'bot', '--login', url, ...args]);
  defer(() => proc.stop());
  return proc;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the demo cluster: bots, forged tokens, the terminal client, and kill -9 of the game', { timeout: 150_000 }, async (t: TestContext) => {
  const defer = cleanupStack(t);
  // A known JWT key, so the test can sign tokens the services would accept, and near-misses of them.
  const { cluster, url, service, output: printed } = await startDemo(defer, { env: { ...process.env, GAMEMESH_JWT_SECRET: SECRET } });

  await t.test('a short bot run ends without errors', async (st) => {
    const run = bot(defer, url, ['--clients', '20', '--duration', '5']);
    const exit = await run.exited;
    for (const line of run.stdout.trimEnd().split('\n')) st.diagnostic(line);
    assert.equal(exit.code, 0, `bot failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^errors: none$/m);
    assert.match(run.stdout, /^login +20 /m);
    assert.match(run.stdout, /^earn gold +[1-9]\d* /m);
    assert.match(run.stderr, /logged in 20\/20 +playing 20 /);
    assert.doesNotMatch(printed(), /exited with code|killed by|restarting/, 'no service died');
  });

  await t.test('the bots play over KCP (UDP) as well', async (st) => {
    const run = bot(defer, url, ['--clients', '10', '--duration', '3', '--kcp']);
    const exit = await run.exited;
    for (const line of run.stdout.trimEnd().split('\n')) st.diagnostic(line);
    assert.equal(exit.code, 0, `bot failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^gamemesh bot: 10 clients over kcp,/m);
    assert.match(run.stdout, /^errors: none$/m);
    assert.match(run.stdout, /^earn gold +[1-9]\d* /m);
  });

  await t.test('the terminal client over KCP', async () => {
    const term = new Proc('client', process.execPath, [BIN, 'client', '--login', url, '--user', 'term-kcp', '--kcp']);
    defer(() => term.stop());
    await term.waitForStdout(/^welcome, term-kcp: level 1, 0 gold\. \d+ in chat/m, 15_000);
    term.child.stdin?.write('hello over udp\n/gold\n');
    await term.waitForStdout(/\[world\] term-kcp \(you\): hello over udp$/m, 5000);
    await term.waitForStdout(/^\+10 gold: you have 10 gold \(level 1\)$/m, 5000);
    term.child.stdin?.write('/quit\n');
    assert.equal((await term.exited).code, 0, term.stderr);
    assert.equal(term.stderr, '');
  });

  await t.test('forged, expired and algorithm-swapped tokens are refused and bind nothing', async () => {
    const mallory = await login(url, 'mallory', 'test-password');
    const client = playerClient(mallory, 'ws', { requestTimeoutMs: 3000, reconnect: false });
    defer(() => client.close());
    await client.connect();
    const claims = { sub: 'victim', name: 'victim' };
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const body = { name: 'victim', sub: 'victim', iss: 'gamemesh', aud: 'gamemesh', iat: now, exp: now + 600 };
    const genuine = (await issueToken(claims, KEY, { ttlSec: 600 })).token;
    const [gh, , gs] = genuine.split('.');
    const forged: Record<string, string> = {
      'another key': (await issueToken(claims, keyFromSecret('not-the-cluster-secret-but-long-enough!!'), { ttlSec: 600 })).token,
      expired: (await issueToken(claims, KEY, { ttlSec: 60, now: Date.now() - 3600_000 })).token,
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(body)}.`,
      HS512: await new SignJWT({ name: 'victim' }).setProtectedHeader({ alg: 'HS512', typ: 'JWT' }).setSubject('victim').setIssuer('gamemesh').setAudience('gamemesh').setIssuedAt(now).setExpirationTime(now + 600).sign(KEY),
      'payload swapped under a genuine signature': `${gh}.${b64({ ...body, sub: 'admin', name: 'admin' })}.${gs}`,
      // The right key and algorithm, but a lifetime no login issues (the maximum is 30 days).
      'exp in 2100': await new SignJWT({ name: 'victim' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('victim').setIssuer('gamemesh').setAudience('gamemesh').setIssuedAt(now).setExpirationTime(Math.floor(Date.UTC(2100, 0, 1) / 1000)).sign(KEY),
      garbage: 'not.a.jwt',
    };
    for (const [what, token] of Object.entries(forged)) {
      await rejects(client.request(EnterGameReq, EnterGameResp, { token }), 'bad_request', `EnterGameReq, ${what}`);
      await rejects(client.request(JoinChatReq, JoinChatResp, { token }), 'bad_request', `JoinChatReq, ${what}`);
    }
    // Nothing was bound: the agent refuses the messages that need a binding.
    await rejects(client.request(EarnGoldReq, EarnGoldResp, {}), 'unauthenticated', 'EarnGoldReq after the forgeries');
    await rejects(client.request(StatsReq, StatsResp, {}), 'unauthenticated', 'StatsReq after the forgeries');
    await rejects(client.request(WhoReq, WhoResp, {}), 'unauthenticated', 'WhoReq after the forgeries');
    // The same construction with the right key and algorithm passes, so the refusals above are about the forgery.
    const entered = await client.request(EnterGameReq, EnterGameResp, { token: genuine });
    assert.equal(entered.player?.name, 'victim');
    await client.request(EarnGoldReq, EarnGoldResp, {});
  });

  await t.test('the terminal client chats, earns, levels (or says why not) and lists players', async () => {
    const other = await joinAs(defer, url, 'term-y');
    const term = new Proc('client', process.execPath, [BIN, 'client', '--login', url, '--user', 'term-x']);
    defer(() => term.stop());
    await term.waitForStdout(/^welcome, term-x: level 1, 0 gold\. \d+ in chat/m, 15_000);
    term.child.stdin?.write('hello from the terminal\n/gold\n/level\n/who\n/w term-y psst  there\n');
    await term.waitForStdout(/\[world\] term-x \(you\): hello from the terminal$/m, 5000);
    await term.waitForStdout(/^\+10 gold: you have 10 gold \(level 1\)$/m, 5000);
    await term.waitForStdout(/^! not enough gold: level 2 costs 100 gold; you have 10 \(\/gold earns more\)$/m, 5000);
    await term.waitForStdout(/^in chat \(\d+\): .*\bterm-x\b/m, 5000);
    await term.waitForStdout(/^\[whisper to term-y\] psst {2}there$/m, 5000);
    await waitFor(() => other.chat.includes('whisper:term-x:psst  there') && other.chat.includes('world:term-x:hello from the terminal'), 5000, 'term-y to get both');
    await other.client.request(ChatSendReq, ChatSendResp, { text: 'hi terminal \u001b[2J\u009b' });
    await other.client.request(WhisperReq, WhisperResp, { to: 'term-x', text: 'just you' });
    await term.waitForStdout(/\[world\] term-y: hi terminal {2}\[2J$/m, 5000);
    await term.waitForStdout(/\[whisper from term-y\] just you$/m, 5000);
    term.child.stdin?.write('/stats\n/quit\n');
    const exit = await term.exited;
    assert.equal(exit.code, 0, term.stderr);
    assert.match(term.stdout, /^term-x: level 1, 10 gold; level 2 costs 100 gold$/m);
    assert.equal(term.stderr, '');
  });

  await t.test('kill -9 of the game: notices and errors, nothing else dies, and no acknowledged progress is lost', async (st) => {
    // b earns a little and then waits; c levels up and then waits; a keeps earning through the crash.
    const [a, b, c, watcher] = [await joinAs(defer, url, 'crash-a'), await joinAs(defer, url, 'crash-b'), await joinAs(defer, url, 'crash-c'), await joinAs(defer, url, 'crash-w')];
    for (let i = 0; i < 3; i++) b.player = playerOf((await b.client.request(EarnGoldReq, EarnGoldResp, {})).player);
    while (c.player.gold < levelCost(c.player.level)) c.player = playerOf((await c.client.request(EarnGoldReq, EarnGoldResp, {})).player);
    c.player = playerOf((await c.client.request(LevelUpReq, LevelUpResp, {})).player);
    assert.equal(c.player.level, 2);

    const term = new Proc('client', process.execPath, [BIN, 'client', '--login', url, '--user', 'crash-term']);
    defer(() => term.stop());
    await term.waitForStdout(/^welcome, crash-term/m, 15_000);
    const bots = bot(defer, url, ['--clients', '10', '--duration', '10', '--timeout', '2']);
    await waitFor(() => /playing 10 /.test(bots.stderr), 20_000, 'the bots to play');

    let aStop = false;
    const aErrors: string[] = [];
    const aLoop = (async () => {
      while (!aStop) {
        try {
          a.player = playerOf((await a.client.request(EarnGoldReq, EarnGoldResp, {})).player);
        } catch (err) {
          aErrors.push((err as ClientError).code);
        }
        await sleep(50);
      }
    })();
    await sleep(500);

    const others = cluster.services.filter((s) => s.name !== 'game' && s.name !== 'routes');
    const pidsBefore = others.map((s) => s.pid);
    const game = service('game');
    const gamePid = game.pid ?? assert.fail('game has no pid');
    process.kill(gamePid, 'SIGKILL');

    await waitFor(() => [a, b, c].every((p) => p.notices.some((n) => n.service === 'game' && !n.up)), 10_000, 'the game-down notice');
    await term.waitForStdout(/^\* game is down, retrying…$/m, 10_000);
    // Meanwhile, everything but the game goes on: login, chat, the other processes.
    const probe = await login(url, 'crash-probe', 'test-password');
    assert.ok(probe.token);
    await b.client.request(ChatSendReq, ChatSendResp, { text: 'is the game down?' });
    await waitFor(() => watcher.chat.includes('world:crash-b:is the game down?'), 5000, 'chat while the game is down');
    assert.deepEqual(others.map((s) => s.pid), pidsBefore, 'no other service was restarted');
    assert.ok(others.every((s) => s.state === 'ready' && s.restarts === 0), others.map((s) => `${s.name}:${s.state}:${s.restarts}`).join(' '));

    await waitFor(() => game.restarts === 1 && game.state === 'ready', 20_000, 'the supervisor to restart the game');
    assert.notEqual(game.pid, gamePid);
    await waitFor(() => [a, b, c].every((p) => p.notices.some((n) => n.service === 'game' && n.up)), 10_000, 'the game-up notice');
    await term.waitForStdout(/^\* game is back$/m, 10_000);
    await waitFor(() => aErrors.length > 0, 5000, 'a to have seen the outage');
    aStop = true;
    await aLoop;

    // Acknowledged means committed: b and c did nothing since, so they find exactly what they were told.
    assert.deepEqual(await stats(b), b.player);
    assert.deepEqual(await stats(c), c.player);
    // a's last request may have been committed without its answer getting out: at most one earning more.
    const aNow = await stats(a);
    assert.equal(aNow.level, a.player.level);
    assert.ok(aNow.gold === a.player.gold || aNow.gold === a.player.gold + earnAmount(a.player.level), `a acked ${a.player.gold} gold, now has ${aNow.gold}`);
    // And play goes on where it was, without entering the game again.
    const next = playerOf((await a.client.request(EarnGoldReq, EarnGoldResp, {})).player);
    assert.equal(next.gold, aNow.gold + earnAmount(aNow.level));
    term.child.stdin?.write('/stats\n/quit\n');
    assert.equal((await term.exited).code, 0);
    assert.match(term.stdout, /^crash-term: level 1, 0 gold/m);

    const exit = await bots.exited;
    for (const line of bots.stdout.trimEnd().split('\n')) st.diagnostic(line);
    assert.ok(exit.code === 0 || exit.code === 1, `the bots crashed: ${String(exit.code)} ${bots.stderr}`);
    assert.match(bots.stdout, /^backend notices: [1-9]\d* down, [1-9]\d* up$/m);
    // Failed requests are expected here; lost or doubled updates (state_mismatch) or anything else are not.
    const codes = [...bots.stdout.matchAll(/^ {2}(\S+) +\d+ +in /gm)].map((m) => m[1]);
    assert.ok(codes.every((code) => code === 'unavailable' || code === 'timeout'), `bot errors: ${bots.stdout}`);
    assert.ok(others.every((s) => s.state === 'ready' && s.restarts === 0));
  });
});
