/**
 * Rolling upgrades of the demo cluster as real processes (gamemesh up's
 * roll, docs/operations.md): the game service under a bot run, v1 → v2 (its
 * players leave by themselves) and v2 → v3 (one stays past --drain-max, is
 * kicked to reconnect and carries on, on v3); then an agent. Throughout:
 * zero bot errors, new players only on the newest version, old instances
 * exiting 0, and no acknowledged gold lost.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { KickCode } from '../src/gateway/kick.js';
import { startDemo } from './helpers/demo.js';
import { cleanupStack } from './helpers/mesh.js';
import { BIN, connectClient, Proc, waitFor } from './helpers/proc.js';
import { earn, holdingOf, instancesOf, joinPlayer, statsOf } from './helpers/rollout.js';

const DRAIN_MAX_SEC = 8;

function bots(url: string, clients: number, seconds: number, extra: readonly string[] = []): Proc {
  return new Proc('bot', process.execPath, [BIN, 'bot', '--login', url, '--clients', String(clients), '--duration', String(seconds), '--timeout', '5', ...extra]);
}

async function botsClean(run: Proc): Promise<string> {
  const exit = await run.exited;
  assert.equal(exit.code, 0, `bots failed:\n${run.stdout}\n${run.stderr.slice(-2000)}`);
  assert.match(run.stdout, /^errors: none$/m);
  return run.stdout;
}

test('rolling upgrades of the demo: the game under bot traffic, then an agent', { timeout: 240_000 }, async (t) => {
  const defer = cleanupStack(t);
  const demo = await startDemo(defer, { env: { ...process.env, GAMEMESH_DRAIN_MAX: String(DRAIN_MAX_SEC) } });
  const token = fs.readFileSync(path.join(demo.dir, 'demo', 'cluster.token'), 'utf8').trim();
  const sd = await connectClient(t, { addr: demo.cluster.vars['sdaddr'] as string, token });
  const game = async (version: number) => {
    const found = (await instancesOf(sd, 'game')).find((i) => i.version === version);
    assert.ok(found, `game v${version} is registered`);
    return found;
  };
  const v1 = await game(1);

  // A player on v1 with acknowledged progress, and a bot run.
  const alice = await joinPlayer(defer, demo.url, 'roll-alice');
  for (let i = 0; i < 3; i++) await earn(alice);
  const run1 = bots(demo.url, 6, 5);
  defer(() => run1.stop());
  await waitFor(async () => (await holdingOf(v1.admin, token)) >= 7, 30_000, 'the bots play on v1', 100);

  // Roll: v2 starts and is ready before v1 retires.
  const notes: string[] = [];
  const rolled = demo.cluster.roll(['game'], (n) => notes.push(n));
  rolled.catch(() => {});
  await waitFor(() => notes.some((n) => /version 2 is ready/.test(n)), 60_000, 'v2 is ready');
  const v2 = await game(2);
  await waitFor(async () => (await game(1)).state === 'retiring', 10_000, 'v1 retires');
  const onV1 = await holdingOf(v1.admin, token);

  // v1's players keep playing; new ones only reach v2.
  const before = alice.state.gold;
  assert.ok((await earn(alice)).gold > before, 'a player of the retiring v1 still plays');
  const run2 = bots(demo.url, 4, 3);
  defer(() => run2.stop());
  const bob = await joinPlayer(defer, demo.url, 'roll-bob');
  await earn(bob);
  let maxOnV1 = 0;
  while (run2.running) {
    maxOnV1 = Math.max(maxOnV1, await holdingOf(v1.admin, token).catch(() => 0));
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(maxOnV1 <= onV1, `no new player reached v1 (${maxOnV1} > ${onV1})`);
  await botsClean(run2);
  await botsClean(run1);
  assert.ok((await holdingOf(v2.admin, token)) >= 1, 'bob is on v2');

  // v1 exits 0 once its last player (alice) has left.
  const aliceGold = alice.state;
  alice.client.close();
  await rolled;
  assert.ok(notes.some((n) => /game: the old instance exited with code 0/.test(n)), notes.join('\n'));
  const alice2 = await joinPlayer(defer, demo.url, 'roll-alice');
  assert.deepEqual(alice2.state, aliceGold, 'alice lost nothing in the move to v2');

  // v2 -> v3 with a player who does not leave: after --drain-max v2 kicks
  // him to reconnect; he lands on v3 with his progress.
  for (let i = 0; i < 2; i++) await earn(bob);
  const bobGold = bob.state;
  alice2.client.close();
  // Bots on v2 through the forced move: the reconnect kick (and what it cuts off) is all they may see.
  const json = path.join(demo.dir, 'bots3.json');
  const run3 = bots(demo.url, 4, DRAIN_MAX_SEC + 6, ['--json', json]);
  defer(() => run3.stop());
  await waitFor(async () => (await holdingOf(v2.admin, token)) >= 5, 30_000, 'the bots play on v2', 100);
  const notes3: string[] = [];
  const t0 = performance.now();
  await demo.cluster.roll(['game'], (n) => notes3.push(n));
  const took = performance.now() - t0;
  assert.ok(took >= DRAIN_MAX_SEC * 1000, `v2 waited out its drain-max (${Math.round(took)} ms)`);
  assert.ok(notes3.some((n) => /game: the old instance exited with code 0/.test(n)), notes3.join('\n'));
  assert.deepEqual(bob.kicks, [KickCode.RECONNECT]);
  await waitFor(() => bob.reentered >= 1 && bob.client.state === 'open', 20_000, 'bob is back in the game');
  assert.deepEqual(await statsOf(bob), bobGold, 'bob lost nothing in the forced move');
  const v3 = await game(3);
  assert.ok((await holdingOf(v3.admin, token)) >= 1, 'bob is on v3');
  assert.ok((await earn(bob)).gold > bobGold.gold, 'bob plays on v3');
  bob.client.close();
  await run3.exited;
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { errors: Record<string, number>; requests: Record<string, { count: number }> };
  t.diagnostic(`bots through the forced move: errors ${JSON.stringify(report.errors)}`);
  assert.equal(report.errors['kicked_11'], 4, 'each bot got the reconnect kick once');
  // The kick closes the connection: a request in flight then fails as 'closed', and the SDK reports the lost connection it recovers from.
  for (const [code, n] of Object.entries(report.errors)) {
    assert.ok(['kicked_11', 'connection_lost', 'closed'].includes(code), `only the reconnect kick and its fallout (${code}: ${n})\n${run3.stdout}`);
    assert.ok(n <= 4, `at most once per bot (${code}: ${n})`);
  }
  assert.ok((report.requests['earn gold']?.count ?? 0) > 0, 'the bots earned gold');

  // The agents: a player keeps playing on his old agent until he leaves,
  // new players go to the new agents, and the old agent exits 0.
  const oldAgents = await instancesOf(sd, 'agent');
  assert.equal(oldAgents.length, 2);
  const carol = await joinPlayer(defer, demo.url, 'roll-carol');
  const held = await Promise.all(oldAgents.map(async (a) => ({ a, n: await holdingOf(a.admin, token) })));
  const carolAgent = held.find((x) => x.n > 0)?.a;
  assert.ok(carolAgent, 'carol is on an agent');
  const notesA: string[] = [];
  const rolledAgents = demo.cluster.roll(['agent-1', 'agent-2'], (n) => notesA.push(n));
  rolledAgents.catch(() => {});
  await waitFor(() => notesA.filter((n) => /version 2 is ready/.test(n)).length === 2, 60_000, 'both new agents are ready');
  await waitFor(async () => (await instancesOf(sd, 'agent')).some((a) => a.id === carolAgent.id && a.state === 'retiring'), 10_000, "carol's agent retires");
  const dave = await joinPlayer(defer, demo.url, 'roll-dave');
  await earn(dave);
  assert.equal(await holdingOf(carolAgent.admin, token), 1, 'dave did not land on the retiring agent');
  const newAgents = (await instancesOf(sd, 'agent')).filter((a) => a.version === 2);
  assert.equal(newAgents.length, 2);
  const onNew = await Promise.all(newAgents.map((a) => holdingOf(a.admin, token)));
  assert.equal(onNew.reduce((x, y) => x + y, 0), 1, 'dave is on a new agent');
  for (let i = 0; i < 3; i++) await earn(carol);
  assert.deepEqual(carol.kicks, [], 'carol played on through the roll');
  carol.client.close();
  await rolledAgents;
  // Both old agents are gone, each with code 0: the one without players may have retired (on agent-1's new version) before its own roll began.
  assert.equal(notesA.filter((n) => /the old instance (exited with code 0|had stopped already \(exited with code 0\))/.test(n)).length, 2, notesA.join('\n'));
  assert.deepEqual((await instancesOf(sd, 'agent')).map((a) => a.version), [2, 2]);
  assert.doesNotMatch(demo.output(), /killed by/, 'nothing had to be killed');
});
