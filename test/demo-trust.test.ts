/**
 * The demo cluster as real processes (demo/cluster.json through
 * startCluster), attacked on the promises of issue 9: one client's requests
 * run in order (100 EarnGoldReq in one TCP write, checked against SQLite), a
 * connection has one identity (A's token in the game, B's in chat), a
 * second sign-in through any service kicks the first connection, and a
 * kill -9 of social in the middle of a bot run stops causing errors within
 * 2 s of its restart.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { encodeTcpFrame } from '../src/client/frame.js';
import { ClientMessages } from '../src/client/messages.js';
import { ClientError, type GameClient, type Kick } from '../src/client/index.js';
import { earnAmount, levelCost } from '../demo/game/rules.js';
import { ChatSendReq, ChatSendResp, EarnGoldReq, EarnGoldResp, EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp, WhisperReq, WhisperResp, WhoReq, WhoResp } from '../demo/gen/index.js';
import { login, type LoginResult } from '../demo/play/login.js';
import { playerClient, playerOf } from '../demo/play/player.js';
import { RawTcpClient, type RawFrame } from './helpers/gateway.js';
import { startDemo } from './helpers/demo.js';
import { cleanupStack, type Defer } from './helpers/mesh.js';
import { BIN, Proc, waitFor } from './helpers/proc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rawPlayer(defer: Defer, account: LoginResult): Promise<RawTcpClient> {
  const [host, port] = (account.agent.tcp ?? assert.fail('no TCP port')).split(':') as [string, string];
  const c = await RawTcpClient.connect(host, Number(port));
  defer(() => c.destroy());
  await c.handshake();
  return c;
}

/** The answer to one seq, decoded as `type`, or a failure with the Error frame's code. */
function decodeAnswer<T>(frame: RawFrame, type: { id: number; decode(b: Uint8Array): T }): T {
  if (frame.msgId === ClientMessages.Error.id) {
    const e = ClientMessages.Error.decode(frame.body);
    assert.fail(`seq ${frame.seq}: ${e.code}: ${e.message}`);
  }
  assert.equal(frame.msgId, type.id, `seq ${frame.seq}`);
  return type.decode(frame.body);
}

async function rejects(p: Promise<unknown>, code: string, what: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ClientError, `${what}: ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    if (message) assert.match(err.message, message, what);
    return true;
  });
}

test('the demo keeps its promises: ordered requests, one identity per connection, restored chat after kill -9', { timeout: 150_000 }, async (t: TestContext) => {
  const defer = cleanupStack(t);
  const { cluster, url, dir, service } = await startDemo(defer);
  const dbGold = (name: string) => {
    const db = new Database(path.join(dir, 'demo', 'game.sqlite'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT level, gold FROM players WHERE name = ?').get(name) as { level: number; gold: number } | undefined;
    } finally {
      db.close();
    }
  };
  const playing = (account: LoginResult) => {
    const client = playerClient(account, 'tcp', { requestTimeoutMs: 3000, reconnect: false });
    defer(() => client.close());
    const kicks: Kick[] = [];
    client.onKick((k) => kicks.push(k));
    return { client, kicks };
  };

  await t.test('100 EarnGoldReq in one TCP write: every one counts, in order, and SQLite agrees; a level-up and an earn sent together both take effect', async () => {
    const account = await login(url, 'order-a', 'test-password');
    const c = await rawPlayer(defer, account);
    c.send(EnterGameReq.id, 2, EnterGameReq.encode({ token: account.token }));
    const start = playerOf(decodeAnswer(await c.waitFrame((f) => f.seq === 2, 5000, 'EnterGameResp'), EnterGameResp).player);
    assert.deepEqual([start.level, start.gold], [1, 0]);
    // The agent allows 100 messages per second per client, refilled continuously: let the bucket fill up.
    await sleep(1100);
    const seqs = Array.from({ length: 100 }, (_, i) => 100 + i);
    c.write(Buffer.concat(seqs.map((seq) => encodeTcpFrame(EarnGoldReq.id, seq, EarnGoldReq.encode({})))));
    await waitFor(() => seqs.every((seq) => c.frames.some((f) => f.seq === seq)), 15_000, '100 answers');
    const earned = seqs.map((seq) => decodeAnswer(c.frames.find((f) => f.seq === seq) as RawFrame, EarnGoldResp));
    assert.deepEqual(
      earned.map((r) => [r.earned, playerOf(r.player).gold]),
      seqs.map((_, i) => [earnAmount(1), start.gold + (i + 1) * earnAmount(1)]),
      'each earning on top of the one before',
    );
    const expected = start.gold + 100 * earnAmount(1);
    c.send(StatsReq.id, 300, StatsReq.encode({}));
    assert.equal(playerOf(decodeAnswer(await c.waitFrame((f) => f.seq === 300, 5000, 'StatsResp'), StatsResp).player).gold, expected);
    assert.deepEqual(dbGold('order-a'), { level: 1, gold: expected }, 'the database holds every earning');

    // Level 2 costs 100 and then earns 15: both in one write, in that order.
    await sleep(1100);
    c.write(Buffer.concat([encodeTcpFrame(LevelUpReq.id, 400, LevelUpReq.encode({})), encodeTcpFrame(EarnGoldReq.id, 401, EarnGoldReq.encode({}))]));
    const up = decodeAnswer(await c.waitFrame((f) => f.seq === 400, 5000, 'LevelUpResp'), LevelUpResp);
    const more = decodeAnswer(await c.waitFrame((f) => f.seq === 401, 5000, 'EarnGoldResp'), EarnGoldResp);
    assert.deepEqual([up.cost, playerOf(up.player).level, playerOf(up.player).gold], [levelCost(1), 2, expected - levelCost(1)]);
    assert.deepEqual([more.earned, playerOf(more.player).level, playerOf(more.player).gold], [earnAmount(2), 2, expected - levelCost(1) + earnAmount(2)]);
    assert.deepEqual(dbGold('order-a'), { level: 2, gold: expected - levelCost(1) + earnAmount(2) }, 'both are on disk');
  });

  await t.test("one identity per connection: A's token in the game and B's in chat is refused, whichever comes first", async () => {
    const [a, b] = [await login(url, 'ident-a', 'test-password'), await login(url, 'ident-b', 'test-password')];
    const one = playing(a).client;
    await one.connect();
    assert.equal(playerOf((await one.request(EnterGameReq, EnterGameResp, { token: a.token })).player).name, 'ident-a');
    await rejects(one.request(JoinChatReq, JoinChatResp, { token: b.token }), 'bad_request', "B's token in chat", /signed in as ident-a; it cannot sign in as ident-b/);
    // Nothing was bound for B: chat is closed to this connection, and gold goes to A.
    await rejects(one.request(WhoReq, WhoResp, {}), 'unauthenticated', 'who after the refusal');
    const gold = playerOf((await one.request(EarnGoldReq, EarnGoldResp, {})).player);
    assert.deepEqual([gold.name, gold.gold], ['ident-a', earnAmount(1)]);
    // Its own token still joins chat, as A.
    assert.equal((await one.request(JoinChatReq, JoinChatResp, { token: a.token })).name, 'ident-a');
    await one.request(WhoReq, WhoResp, {});

    // The other way round: B in chat first, then A's token in the game.
    const two = playing(b).client;
    await two.connect();
    assert.equal((await two.request(JoinChatReq, JoinChatResp, { token: b.token })).name, 'ident-b');
    await rejects(two.request(EnterGameReq, EnterGameResp, { token: a.token }), 'bad_request', "A's token in the game", /signed in as ident-b; it cannot sign in as ident-a/);
    await rejects(two.request(EarnGoldReq, EarnGoldResp, {}), 'unauthenticated', 'earning after the refusal');
    // A's gold is untouched by B's connection; B's player does not exist yet.
    assert.equal(dbGold('ident-a')?.gold, earnAmount(1));
    assert.equal(dbGold('ident-b'), undefined);
    assert.equal(one.state, 'open');
  });

  await t.test('a second sign-in kicks the first connection, whichever service it goes through', async () => {
    const first = playing(await login(url, 'dup-a', 'test-password'));
    await first.client.connect();
    await first.client.request(EnterGameReq, EnterGameResp, { token: (await login(url, 'dup-a', 'test-password')).token });
    // Only chat on the second connection: the game never sees it, and still the first is kicked.
    const second = playing(await login(url, 'dup-a', 'test-password'));
    await second.client.connect();
    await second.client.request(JoinChatReq, JoinChatResp, { token: (await login(url, 'dup-a', 'test-password')).token });
    await waitFor(() => first.kicks.length > 0, 5000, 'the first connection to be kicked');
    assert.deepEqual(first.kicks.map((k) => [k.code, k.reason]), [[9, 'logged in from another client']]);
    // And the other way: only the game on a third connection kicks the chat-only second one.
    const third = playing(await login(url, 'dup-a', 'test-password'));
    await third.client.connect();
    await third.client.request(EnterGameReq, EnterGameResp, { token: (await login(url, 'dup-a', 'test-password')).token });
    await waitFor(() => second.kicks.length > 0, 5000, 'the second connection to be kicked');
    assert.equal(third.kicks.length, 0);
    await third.client.request(EarnGoldReq, EarnGoldResp, {});
  });

  await t.test('kill -9 of social during a bot run: players stay in chat, and errors stop within 2 s of its restart', async (st) => {
    const testers = await Promise.all(
      ['chat-x', 'chat-y'].map(async (name) => {
        const account = await login(url, name, 'test-password');
        const { client } = playing(account);
        await client.connect();
        await client.request(EnterGameReq, EnterGameResp, { token: account.token });
        await client.request(JoinChatReq, JoinChatResp, { token: account.token });
        return { name, client };
      }),
    );
    const bots = new Proc('bot', process.execPath, [BIN, 'bot', '--login', url, '--clients', '10', '--duration', '12', '--timeout', '2']);
    defer(() => bots.stop());
    await waitFor(() => /playing 10 /.test(bots.stderr), 20_000, 'the bots to play');

    const errors: Array<{ at: number; what: string }> = [];
    let ok = 0;
    let stop = false;
    const loop = async (client: GameClient, other: string) => {
      const calls = [() => client.request(WhoReq, WhoResp, {}), () => client.request(ChatSendReq, ChatSendResp, { text: 'still here?' }), () => client.request(WhisperReq, WhisperResp, { to: other, text: 'psst' })];
      for (let i = 0; !stop; i++) {
        try {
          await (calls[i % calls.length] as () => Promise<unknown>)();
          ok++;
        } catch (err) {
          errors.push({ at: Date.now(), what: err instanceof ClientError ? `${err.code}: ${err.message}` : String(err) });
        }
        await sleep(20);
      }
    };
    const loops = testers.map((p, i) => loop(p.client, testers[1 - i]?.name ?? ''));
    await sleep(500);

    const social = service('social');
    const others = cluster.services.filter((s) => s.name !== 'social' && s.name !== 'routes');
    const pidsBefore = others.map((s) => s.pid);
    process.kill(social.pid ?? assert.fail('social has no pid'), 'SIGKILL');
    await waitFor(() => errors.length > 0, 5000, 'the testers to see social down');
    await waitFor(() => social.restarts === 1 && social.state === 'ready', 20_000, 'the supervisor to restart social');
    const readyAt = Date.now();
    const okAtReady = ok;
    await sleep(3000);
    stop = true;
    await Promise.all(loops);

    const lastError = Math.max(...errors.map((e) => e.at));
    st.diagnostic(`tester errors: ${errors.length}, the last ${lastError - readyAt} ms after social was ready again`);
    const late = errors.filter((e) => e.at > readyAt + 2000);
    assert.deepEqual(late, [], 'no tester error later than 2 s after the restart');
    assert.ok(ok > okAtReady + 20, `the testers went on: ${ok - okAtReady} answers since the restart`);
    assert.ok(errors.every((e) => /^unavailable: /.test(e.what)), errors.map((e) => e.what).join('\n'));
    // Still in chat, without joining again: who lists both.
    const who = await (testers[0] as { client: GameClient }).client.request(WhoReq, WhoResp, {});
    assert.ok(['chat-x', 'chat-y'].every((n) => who.names.includes(n)), who.names.join(','));

    const exit = await bots.exited;
    for (const line of bots.stdout.trimEnd().split('\n')) st.diagnostic(line);
    assert.ok(exit.code === 0 || exit.code === 1, `the bots crashed: ${String(exit.code)} ${bots.stderr}`);
    // Requests in flight or sent while social was down fail; nothing else does ("not in chat" above all).
    const codes = [...bots.stdout.matchAll(/^ {2}(\S+) +\d+ +in /gm)].map((m) => m[1]);
    assert.ok(codes.every((code) => code === 'unavailable' || code === 'timeout'), `bot errors: ${bots.stdout}`);
    const last = /^errors: \d+, the last at (\S+)$/m.exec(bots.stdout);
    if (last) assert.ok(Date.parse(last[1] as string) <= readyAt + 2000, `the bots' last error was ${Date.parse(last[1] as string) - readyAt} ms after the restart`);
    assert.deepEqual(others.map((s) => s.pid), pidsBefore, 'nothing else was restarted');
  });
});
