import os from 'node:os';
/**
 * A user's first hour, exactly as a user goes through it, from the package's
 * own tarball and offline: `npm pack`; `gamemesh init` (the bin of the
 * unpacked tarball) in a temporary folder with the tarball as the
 * dependency; `npm install` from the npm cache and the tarball; the new
 * project's `npm test`; `npm start`, which serves the page; and a client
 * request, from Node with the project's installed SDK, and from the page in
 * Chromium when it is installed (CI installs it).
 *
 * Offline, npm needs a lockfile to resolve versions without the registry;
 * test/helpers/offline-lock.ts writes one from gamemesh's own lock (see
 * there). Runs after `npm run build` (npm test does it first): the tarball
 * packs dist/ as it is.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { chromiumMissing, launchChromium } from './helpers/browser.js';
import { writeOfflineLock } from './helpers/offline-lock.js';
import { freePort, ROOT, tempDir } from './helpers/proc.js';
import { cleanEnv, npm, packGamemesh } from './helpers/scaffold.js';

const run = promisify(execFile);
const NPM_ENV = cleanEnv();

/** `p`, or 'timeout' after `ms`; the timer does not outlive the race. */
async function orTimeout(p: Promise<string>, ms: number): Promise<string> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, sleep(ms, 'timeout', { signal: ac.signal })]);
  } finally {
    ac.abort();
  }
}

/** Processes whose working directory is inside `dir`: what `npm start` started there, for a last-resort cleanup. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) out.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

test('npm pack, gamemesh init, offline npm install, npm test, npm start, a client request', { timeout: 240_000 }, async (t) => {
  const started = performance.now();
  const step = (what: string) => t.diagnostic(`${what}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const tmp = fs.realpathSync(tempDir(t, 'gamemesh-init-'));

  // 1. npm pack, unpacked: the files the package ships, nothing from this checkout.
  const { tarball, bin } = await packGamemesh(tmp);
  step('packed');

  // 2. gamemesh init, with the unpacked tarball's bin.
  const init = await run(process.execPath, [bin, 'init', 'my-game', '--gamemesh', `file:${tarball}`], { cwd: tmp, env: NPM_ENV, timeout: 20_000 });
  assert.match(init.stdout, /created my-game/);
  const project = path.join(tmp, 'my-game');
  for (const file of ['package.json', 'proto/game.proto', 'src/game.ts', 'src/main.ts', 'cluster.json', 'web/index.html', 'web/app.ts', 'test/game.test.ts', 'README.md', '.gitignore']) {
    assert.ok(fs.existsSync(path.join(project, file)), `the scaffold has ${file}`);
  }
  assert.match(fs.readFileSync(path.join(project, 'README.md'), 'utf8'), /^# my-game\n\n```sh\nnpm install && npm start[^\n]*\nnpm test/);
  // A second init into the same folder writes nothing.
  await assert.rejects(run(process.execPath, [bin, 'init', 'my-game'], { cwd: tmp, timeout: 20_000 }), /not an empty folder/);

  step('init');
  // 3. npm install, offline: the npm cache and the tarball only.
  writeOfflineLock(ROOT, project, tarball);
  await npm(['install', '--offline'], project, 120_000);
  assert.ok(fs.existsSync(path.join(project, 'node_modules', 'gamemesh', 'dist', 'src', 'testing', 'index.js')));

  step('installed');
  // 4. The project's own test, on gamemesh/testing.
  const tested = await npm(['test'], project, 120_000);
  assert.match(tested, /gamemesh gen: .* 3 messages with ids, 0 services, 1 routes/);
  assert.match(tested, /# pass 2\n# fail 0/);

  step('tested');
  // 5. npm start serves the page.
  const sdPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === sdPort) httpPort = await freePort();
  const start = spawn('npm', ['start', '--', '--sdaddr', `127.0.0.1:${sdPort}`, '--http', `127.0.0.1:${httpPort}`], { cwd: project, env: NPM_ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  start.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
  start.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<string>((resolve) => start.once('exit', (code, signal) => resolve(signal ?? `code ${String(code)}`)));
  t.after(async () => {
    if (start.exitCode === null && start.signalCode === null) {
      process.kill(-(start.pid as number), 'SIGINT');
      await orTimeout(exited, 15_000);
    }
    for (const pid of processesIn(project)) process.kill(pid, 'SIGKILL');
  });
  const deadline = Date.now() + 90_000;
  while (!/cluster my-game is up/.test(output)) {
    if (start.exitCode !== null || Date.now() > deadline) assert.fail(`npm start did not bring the cluster up:\n${output}`);
    await sleep(100);
  }
  step('cluster up');
  const base = `http://127.0.0.1:${httpPort}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<script type="importmap">[^<]*"gamemesh\/client": "\/gamemesh\/client.js"/);
  for (const asset of ['/gamemesh/client.js', '/js/web/app.js', '/js/src/gen/index.js']) {
    const res = await fetch(`${base}${asset}`);
    assert.equal(res.status, 200, asset);
    assert.match(res.headers.get('content-type') ?? '', /javascript/, asset);
  }

  step('page served');
  // 6. A client request gets its answer: Node, with the SDK the project installed.
  const script = [
    "import { GameClient, login, wsTransportNode } from 'gamemesh/client-node';",
    "import { HelloReq, HelloResp, LobbyChanged } from './dist/src/gen/index.js';",
    `const answer = await login('${base}', 'nodeplayer', 'password');`,
    'const client = new GameClient({ transport: () => wsTransportNode(answer.agent.ws), token: answer.token });',
    'await client.connect();',
    'const hello = await client.request(HelloReq, HelloResp, {});',
    'const changed = new Promise((resolve) => client.on(LobbyChanged, resolve));',
    "const room = await client.joinOrCreate('lobby', {}, { service: 'game' });",
    'const lobby = await changed;',
    'console.log(JSON.stringify({ name: hello.name, room: room.type, players: lobby.players }));',
    'client.close();',
  ].join('\n');
  fs.writeFileSync(path.join(project, 'request.mjs'), script);
  const answer = await run(process.execPath, ['request.mjs'], { cwd: project, timeout: 20_000 });
  assert.deepEqual(JSON.parse(answer.stdout) as unknown, { name: 'nodeplayer', room: 'lobby', players: ['nodeplayer'] });

  step('node client answered');
  // gamemesh client and gamemesh bot, as the project installed them, on the project's own messages.
  const gm = path.join(project, 'node_modules', '.bin', 'gamemesh');
  const probe = await run(gm, ['client', '--login', base, '--user', 'cliplayer', '--proto', 'proto', '--send', 'game.HelloReq'], { cwd: project, env: NPM_ENV, timeout: 30_000 });
  assert.deepEqual(JSON.parse(probe.stdout) as unknown, { name: 'cliplayer' });
  const bots = await run(gm, ['bot', '--login', base, '--proto', 'proto', '--send', 'game.HelloReq', '--clients', '3', '--duration', '1', '--rate', '2'], { cwd: project, env: NPM_ENV, timeout: 30_000 });
  assert.match(bots.stdout, /3\/3 logged in; \d+ answers, 0 errors/);
  step('gamemesh client and bot answered');

  // And from the page, in a browser, when there is one.
  const noChromium = chromiumMissing();
  if (noChromium && process.env['CI']) assert.fail(noChromium);
  if (!noChromium) {
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (err) => errors.push(err.message));
      await tab.goto(`${base}/`);
      await tab.fill('#account', 'webplayer');
      await tab.click('button[type=submit]');
      // The page shows who is in the lobby room once it joined (nodeplayer has left it by now).
      await tab.locator('#players', { hasText: 'webplayer' }).waitFor({ timeout: 15_000 });
      assert.match((await tab.textContent('#log')) ?? '', /you are webplayer/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  }

  step('browser client answered');
  // Ctrl+C stops it all.
  process.kill(-(start.pid as number), 'SIGINT');
  // npm itself ends by the signal (or 0); what counts is that gamemesh up stopped every service.
  assert.match(await orTimeout(exited, 30_000), /^(SIGINT|code 0)$/, output.slice(-2000));
  for (const svc of ['game', 'agent', 'login', 'discovery']) assert.match(output, new RegExp(`${svc} +\\| stopped \\(exited with code 0\\)`));
  await sleep(200);
  assert.deepEqual(processesIn(project), [], 'nothing of the cluster is left running');
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`the whole first hour took ${seconds.toFixed(1)} s`);
  // The 2-minute budget is a goal for an idle machine, reported here; a wall-clock assertion would fail on a loaded one.
  if (seconds >= 120) t.diagnostic(`over the 2-minute budget (load average ${(os.loadavg()[0] ?? 0).toFixed(1)})`);
});
