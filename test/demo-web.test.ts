/**
 * The demo end to end, in a real browser: the demo cluster (demo/cluster.json,
 * as `npm start` runs it, on free ports with its data in a temp dir) and two
 * pages of the demo's web page in headless Chromium (Debian's, driven by
 * playwright-core) that log in, chat with each other, and earn gold up to a
 * level up.
 *
 * Without /usr/bin/chromium the test is skipped, or fails when CI is set
 * (.ci/run installs it). Set GAMEMESH_SCREENSHOT_DIR to keep the screenshots.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Cluster } from '../src/up/supervisor.js';
import { chromiumMissing, launchChromium } from './helpers/browser.js';
import { startDemoCluster } from './helpers/demo-cluster.js';
import { ROOT, waitFor } from './helpers/proc.js';

const BUNDLE = path.join(ROOT, 'demo', 'web', 'app.js');
const PAGE_SOURCE = path.join(ROOT, 'demo', 'web-src', 'app.ts');
const PASSWORD = 'secret123';
/** Per step (a click's answer, a chat line arriving); the cluster answers in milliseconds. */
const STEP_MS = 10_000;

const noChromium = chromiumMissing();

test('demo web page: two players log in, chat, whisper and level up', { skip: noChromium !== undefined && !process.env['CI'] ? noChromium : false, timeout: 60_000 }, async (t) => {
  if (noChromium) assert.fail(`${noChromium}; CI is set, so this is a failure rather than a skip`);
  assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: run node scripts/build-web.mjs (npm test and npm install do)`);
  assert.ok(statSync(BUNDLE).mtimeMs >= statSync(PAGE_SOURCE).mtimeMs, `${BUNDLE} is older than ${PAGE_SOURCE}: run node scripts/build-web.mjs`);

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gamemesh-demo-web-'));
  const shots = process.env['GAMEMESH_SCREENSHOT_DIR'] ?? path.join(tmp, 'screenshots');
  mkdirSync(shots, { recursive: true });
  let output = '';
  let cluster: Cluster | undefined;
  let browser: Browser | undefined;
  // One hook, so the order is sure: the browser, then the cluster, then the files they used.
  t.after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  try {
    // The demo's own file; ${data} moves discovery's and the game's files out of the package.
    cluster = (await startDemoCluster(path.join(tmp, 'data'), { color: false, stopTimeoutMs: 5000, write: (text) => (output += text) })).cluster;
    const url = cluster.urls[0];
    assert.ok(url, 'the cluster file names the page URL');

    browser = await launchChromium();
    const alice = await openPage(browser, url);
    const bob = await openPage(browser, url);

    // A refused login is reported on the page, which stays on the form.
    await logIn(bob.page, 'bob', '123');
    await bob.page.locator('#status-message.error', { hasText: 'password must be 6-128 characters' }).waitFor();
    assert.equal(await bob.page.locator('#login').isVisible(), true);
    await screenshot(bob.page, path.join(shots, 'demo-web-login.png'));

    await logIn(alice.page, 'alice', PASSWORD);
    await enteredAs(alice.page, 'alice');
    await logIn(bob.page, 'bob', PASSWORD);
    await enteredAs(bob.page, 'bob');

    // World chat reaches both pages, whoever sent it.
    await say(alice.page, 'hello from alice');
    await chatLine(bob.page, 'world', 'hello from alice', 'alice');
    await chatLine(alice.page, 'world', 'hello from alice', 'alice (you)');
    await say(bob.page, 'hi alice, bob here');
    await chatLine(alice.page, 'world', 'hi alice, bob here', 'bob');

    // A whisper reaches bob only; alice sees what she sent.
    await say(alice.page, '/w bob meet me at the fountain');
    await chatLine(bob.page, 'whisper', 'meet me at the fountain', 'alice whispers');
    await chatLine(alice.page, 'whisper', 'meet me at the fountain', 'to bob');
    await say(bob.page, '/who');
    await chatLine(bob.page, 'note', 'online: alice, bob');

    // Too poor to level up: the game's rule comes back as the page's error.
    assert.deepEqual(await stats(alice.page), { name: 'alice', level: 1, gold: 0 });
    await alice.page.click('#level-up');
    await alice.page.locator('#status-message.error', { hasText: 'level 2 costs 100 gold; you have 0' }).waitFor();

    // Work until the level is affordable, then buy it.
    for (let clicks = 0; (await stats(alice.page)).gold < 100; clicks++) {
      assert.ok(clicks < 20, 'earning 100 gold took over 20 clicks');
      const before = (await stats(alice.page)).gold;
      await alice.page.click('#earn-gold');
      await waitFor(async () => (await stats(alice.page)).gold > before, STEP_MS, 'gold after Earn gold', 25);
    }
    const rich = await stats(alice.page);
    await alice.page.click('#level-up');
    await waitFor(async () => (await stats(alice.page)).level === 2, STEP_MS, 'level 2 after Level up', 25);
    assert.deepEqual(await stats(alice.page), { name: 'alice', level: 2, gold: rich.gold - 100 });
    await alice.page.locator('#status-message:not(.error)', { hasText: 'level 2 reached for 100 gold' }).waitFor();
    assert.deepEqual(await stats(bob.page), { name: 'bob', level: 1, gold: 0 });

    await screenshot(alice.page, path.join(shots, 'demo-web-alice.png'));
    await screenshot(bob.page, path.join(shots, 'demo-web-bob.png'));
    if (process.env['GAMEMESH_SCREENSHOT_DIR']) t.diagnostic(`screenshots in ${shots}`);

    // Logging out closes the connection and brings the form back.
    await bob.page.click('#logout');
    await bob.page.locator('#login').waitFor({ state: 'visible' });
    assert.equal(await bob.page.textContent('#status-message'), 'logged out');
    assert.equal(await bob.page.textContent('#status-conn'), 'not connected');

    // Nothing on either page threw or logged an error along the way.
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  } catch (err) {
    t.diagnostic('cluster output (last 40 lines):');
    for (const line of output.split('\n').slice(-40)) t.diagnostic(line);
    throw err;
  }
});

interface Opened {
  page: Page;
  /** Uncaught exceptions and console errors of the page. */
  errors: string[];
}

/**
 * A page in a context of its own: the two players share nothing, and each
 * page has a window of its own. (Two tabs of one window would leave one in
 * the background, where every click waits for animation frames that do not come.)
 */
async function openPage(browser: Browser, url: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  page.setDefaultTimeout(STEP_MS);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    // An error answer of /api/login is the browser's console line too; the page reports it itself (checked above).
    const loginAnswer = msg.text().startsWith('Failed to load resource') && new URL(msg.location().url || url).pathname === '/api/login';
    if (msg.type() === 'error' && !loginAnswer) errors.push(`console: ${msg.text()}`);
  });
  await page.goto(url);
  return { page, errors };
}

async function logIn(page: Page, account: string, password: string): Promise<void> {
  await page.fill('#account', account);
  await page.fill('#password', password);
  await page.click('#login-submit');
}

async function enteredAs(page: Page, name: string): Promise<void> {
  await page.locator('#game').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#login').isVisible(), false);
  assert.equal(await page.textContent('#player-name'), name);
  assert.match((await page.textContent('#status-conn')) ?? '', new RegExp(`^connected to ws://127\\.0\\.0\\.1:\\d+/\\S* as ${name}$`));
}

async function say(page: Page, line: string): Promise<void> {
  await page.fill('#chat-input', line);
  await page.press('#chat-input', 'Enter');
  // The input is cleared once the message has been accepted.
  await waitFor(async () => (await page.inputValue('#chat-input')) === '', STEP_MS, `"${line}" to be sent`, 25);
}

/** Waits for a line of the chat log of this kind, text and (if given) sender. */
async function chatLine(page: Page, kind: string, text: string, who?: string): Promise<void> {
  let line = page.locator(`#chat-log li[data-kind="${kind}"]`, { hasText: text });
  if (who !== undefined) line = line.filter({ has: page.locator('b', { hasText: new RegExp(`^${who.replace(/[()]/g, '\\$&')}$`) }) });
  await line.first().waitFor();
}

async function screenshot(page: Page, file: string): Promise<void> {
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(statSync(file).size > 10_000, `${file} looks empty`);
}

async function stats(page: Page): Promise<{ name: string; level: number; gold: number }> {
  const [name, level, gold] = await Promise.all(['#player-name', '#player-level', '#player-gold'].map((sel) => page.textContent(sel)));
  return { name: name ?? '', level: Number(level), gold: Number(gold) };
}
