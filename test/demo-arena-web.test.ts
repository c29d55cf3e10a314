/**
 * The demo's arena in a real browser: the demo cluster (demo/cluster.json,
 * as `npm start` runs it, on free ports) and two pages in headless Chromium
 * whose players are on different agents, in the same arena room; each
 * moves with the keyboard and the other page sees it move. Meanwhile
 * `gamemesh bot --arena` sends 10 bots, which fill the pages' room (6 seats
 * left) and open one more, and walk.
 *
 * Without /usr/bin/chromium the test is skipped, or fails when CI is set.
 * GAMEMESH_ARENA_SHOT=docs/arena.png writes the screenshot docs/rooms.md shows.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Cluster } from '../src/up/supervisor.js';
import { chromiumMissing, launchChromium } from './helpers/browser.js';
import { startDemoCluster } from './helpers/demo-cluster.js';
import { ClientError, GameClient, wsTransportNode } from '../src/client-node/index.js';
import { login } from '../demo/play/login.js';
import { runCli, waitFor } from './helpers/proc.js';

const PASSWORD = 'secret123';
const STEP_MS = 10_000;
const noChromium = chromiumMissing();

test('demo arena: two pages on different agents see each other move', { skip: noChromium !== undefined && !process.env['CI'] ? noChromium : false, timeout: 60_000 }, async (t) => {
  if (noChromium) assert.fail(`${noChromium}; CI is set, so this is a failure rather than a skip`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gamemesh-arena-web-'));
  let output = '';
  let cluster: Cluster | undefined;
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  try {
    cluster = (await startDemoCluster(path.join(tmp, 'data'), { color: false, stopTimeoutMs: 5000, write: (text) => (output += text) })).cluster;
    const url = cluster.urls[0];
    assert.ok(url);
    browser = await launchChromium();
    const errors: string[] = [];
    const alice = await openPage(browser, url, errors);
    const bob = await openPage(browser, url, errors);

    await logIn(alice, 'alice');
    const aliceAgent = await agentOf(alice);
    // Login sends each player to the least-loaded agent; its view of the load lags a little, so bob tries again until he is on the other one.
    let bobAgent = '';
    for (let attempt = 0; ; attempt++) {
      await logIn(bob, 'bob');
      bobAgent = await agentOf(bob);
      if (bobAgent !== aliceAgent) break;
      assert.ok(attempt < 8, `bob kept landing on alice's agent ${aliceAgent}`);
      await bob.click('#logout');
      await bob.locator('#login').waitFor({ state: 'visible' });
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.notEqual(aliceAgent, bobAgent);

    // Both in the same arena room (joinOrCreate filled alice's before making another).
    const roomA = await roomOf(alice);
    const roomB = await roomOf(bob);
    assert.equal(roomA, roomB, 'both pages joined the same arena room');
    await seen(alice, 'bob');
    await seen(bob, 'alice');

    // Bots join while the players move: 6 fill this room, 4 get a new one.
    const bots = runCli(['bot', '--arena', '--login', url, '--clients', '10', '--duration', '4', '--timeout', '8'], 40_000);
    await waitFor(async () => (await alice.locator('#arena-players li').count()) === 8, 20_000, 'bots filling the room to 8', 50);

    // Alice holds the right arrow: bob's page sees her x grow. Bob holds S (down): alice sees his y grow.
    const a0 = await position(bob, 'alice');
    await hold(alice, 'ArrowRight', 700);
    await waitFor(async () => (await position(bob, 'alice')).x >= a0.x + 40, STEP_MS, 'alice moving right on bob\'s page', 25);
    assert.equal((await position(bob, 'alice')).y, a0.y, 'alice moved right only');

    const b0 = await position(alice, 'bob');
    await hold(bob, 'KeyS', 700);
    await waitFor(async () => (await position(alice, 'bob')).y >= b0.y + 40, STEP_MS, 'bob moving down on alice\'s page', 25);
    // Released keys stop the player (the key-up's input may still be on its way): two looks 300 ms apart come to agree.
    let b1 = await position(alice, 'bob');
    await waitFor(
      async () => {
        await new Promise((r) => setTimeout(r, 300));
        const b2 = await position(alice, 'bob');
        const still = b2.x === b1.x && b2.y === b1.y;
        b1 = b2;
        return still;
      },
      STEP_MS,
      'bob to stop once the key was released',
    );
    // Each page agrees with the other about where each player is.
    assert.deepEqual(await position(bob, 'bob'), b1);

    const shot = process.env['GAMEMESH_ARENA_SHOT'];
    const file = shot ? path.resolve(shot) : path.join(tmp, 'arena.png');
    await alice.locator('.arena').screenshot({ path: file });
    assert.ok(statSync(file).size > 5_000, `${file} looks empty`);
    assert.deepEqual(errors, []);

    // Joining without the login token, or with a forged one, is refused with a reason, and the arena stays up.
    const mallory = await login(url, 'mallory', PASSWORD);
    const c = new GameClient({ transport: () => wsTransportNode(mallory.agent.ws ?? assert.fail('no ws')), reconnect: false });
    try {
      await c.connect();
      const refused = async (filter: Record<string, unknown>, why: RegExp) => {
        const err = await c.joinOrCreate('arena', filter, { service: 'arena' }).then(() => assert.fail('joined'), (e: unknown) => e);
        assert.ok(err instanceof ClientError && err.code === 'join_refused' && why.test(err.message), `refusal: ${String(err)}`);
      };
      await refused({}, /join the arena with \{ token \}/);
      await refused({ token: `${mallory.token.slice(0, -4)}AAAA` }, /login again: the token is not valid/);
      await refused({ token: 42 }, /join the arena with \{ token \}/);
      const room = await c.joinOrCreate('arena', { token: mallory.token }, { service: 'arena' });
      assert.match(room.id, /^\d+\.\d+\.\d+~/, 'then the token gets a seat');
      await room.leave();
    } finally {
      c.close();
    }

    const run = await bots;
    assert.equal(run.code, 0, `bot --arena failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /10\/10 joined, 2 rooms/);
    const rate = Number(/states received\s+([\d.]+) \/s per bot/.exec(run.stdout)?.[1]);
    assert.ok(rate > 10 && rate < 25, `bots received ${rate} states/s each (the arena ticks 20 times a second)`);
    assert.match(run.stdout, /input -> ack\s+p50 [\d.]+ ms/);
    for (const line of run.stdout.trim().split('\n')) t.diagnostic(line);
  } catch (err) {
    t.diagnostic('cluster output (last 40 lines):');
    for (const line of output.split('\n').slice(-40)) t.diagnostic(line);
    throw err;
  }
});

async function openPage(browser: Browser, url: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  await page.goto(url);
  return page;
}

async function logIn(page: Page, account: string): Promise<void> {
  await page.fill('#account', account);
  await page.fill('#password', PASSWORD);
  await page.click('#login-submit');
  await page.locator('#game').waitFor({ state: 'visible' });
}

async function agentOf(page: Page): Promise<string> {
  const text = (await page.textContent('#status-conn')) ?? '';
  const m = /^connected to (ws:\/\/\S+) as /.exec(text);
  assert.ok(m, `status line: ${text}`);
  return m[1] as string;
}

async function roomOf(page: Page): Promise<string> {
  await page.locator('#arena-info[data-room]').waitFor();
  return (await page.getAttribute('#arena-info', 'data-room')) ?? '';
}

async function seen(page: Page, name: string): Promise<void> {
  await page.locator(`#arena-players li[data-name="${name}"]`).waitFor();
}

async function position(page: Page, name: string): Promise<{ x: number; y: number }> {
  const li = page.locator(`#arena-players li[data-name="${name}"]`);
  const [x, y] = await Promise.all([li.getAttribute('data-x'), li.getAttribute('data-y')]);
  return { x: Number(x), y: Number(y) };
}

/** Holds a key on the field (focused, so the key is a move and not text). */
async function hold(page: Page, key: string, ms: number): Promise<void> {
  await page.focus('#arena-canvas');
  await page.keyboard.down(key);
  await new Promise((r) => setTimeout(r, ms));
  await page.keyboard.up(key);
}
