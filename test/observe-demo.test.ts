/**
 * The demo cluster as `npm start` runs it (demo/cluster.json, free ports,
 * data in a temp dir), observed:
 * - bots play (`gamemesh bot --json`), and every service kind's /metrics
 *   (agents, game, social, hub, login, the discovery server) parses as the
 *   Prometheus text format and shows the traffic: counters that moved,
 *   histograms that filled, a 401 without the token;
 * - the dashboard in headless Chromium (Debian's, driven by playwright-core):
 *   every service listed live; one more agent started by hand shows up
 *   within 2 s; a KV value edited on the page with the token takes effect
 *   (the agents tell their clients the new heartbeat period); a wrong token
 *   is refused; secrets are masked.
 * GAMEMESH_DASHBOARD_SCREENSHOT=FILE keeps a screenshot of the page (docs/dashboard.png is one).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { DiscoveryClient } from '../src/discovery/client.js';
import { C } from '../src/gateway/messages.js';
import { startCluster, type Cluster } from '../src/up/supervisor.js';
import { RawTcpClient } from './helpers/gateway.js';
import { parsePrometheus, type Scrape } from './helpers/prom.js';
import { BIN, freePort, Proc, ROOT, waitFor } from './helpers/proc.js';
import { ChatSendReq, ChatSendResp } from '../demo/gen/index.js';
import { login as logIn } from '../demo/play/login.js';
import { enterWorld, playerClient } from '../demo/play/player.js';

const CHROMIUM = '/usr/bin/chromium';
const CLUSTER_FILE = path.join(ROOT, 'demo', 'cluster.json');
const noChromium = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`;

test('the demo cluster, observed: /metrics of every service kind, and the dashboard', { timeout: 150_000 }, async (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gamemesh-observe-demo-'));
  let output = '';
  let browser: Browser | undefined;
  const procs: Proc[] = [];
  // Ports are picked before the cluster starts; one of its own OS-picked ports can take one first: retry on fresh ports.
  let sdaddr = '';
  let httpAddr = '';
  let dashAddr = '';
  let cluster: Cluster | undefined;
  t.after(async () => {
    await browser?.close().catch(() => {});
    for (const p of procs) await p.stop();
    await cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });
  for (let attempt = 1; ; attempt++) {
    sdaddr = `127.0.0.1:${await freePort()}`;
    httpAddr = `127.0.0.1:${await freePort()}`;
    dashAddr = `127.0.0.1:${await freePort()}`;
    rmSync(path.join(tmp, 'data'), { recursive: true, force: true });
    output = '';
    cluster = startCluster(CLUSTER_FILE, {
      cwd: ROOT,
      vars: { sdaddr, http: httpAddr, dashboard: dashAddr, data: path.join(tmp, 'data') },
      color: false,
      stopTimeoutMs: 5000,
      write: (text) => (output += text),
    });
    try {
      await cluster.ready;
      break;
    } catch (err) {
      await cluster.stop();
      if (attempt < 3 && /EADDRINUSE/.test((err as Error).message)) continue;
      assert.fail(`${(err as Error).message}\n${output.slice(-3000)}`);
    }
  }
  // gamemesh up generated the cluster token on this first start (demo/cluster.json, "secrets").
  const token = readFileSync(path.join(tmp, 'data', 'demo', 'cluster.token'), 'utf8').trim();
  assert.ok(token.length >= 16, 'a generated cluster token');
  assert.deepEqual(cluster.urls, [`http://${httpAddr}/`, `http://${dashAddr}/`], 'npm start prints the game and the dashboard');
  const sd = await DiscoveryClient.connect({ addr: sdaddr, token, name: 'observe-test' });
  t.after(() => sd.close());
  const env = { ...process.env, GAMEMESH_SDADDR: sdaddr, GAMEMESH_TOKEN: token, GAMEMESH_ADMIN: '127.0.0.1:0' };

  const scrape = async (admin: string): Promise<Scrape> => {
    const res = await fetch(`http://${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, `${admin}/metrics`);
    return parsePrometheus(await res.text());
  };
  const adminOf = async (id: string): Promise<string> => {
    const desc = (await sd.listServices()).find((d) => d.id === id);
    assert.ok(desc?.meta['admin'], `${id} registered its admin port`);
    return desc.meta['admin'];
  };

  await t.test('bots play; /metrics of every kind parses and shows it', async () => {
    const services = await sd.listServices();
    assert.deepEqual(services.map((d) => d.name).sort(), ['agent', 'agent', 'arena', 'game', 'hub', 'login', 'social']);
    for (const d of services) assert.match(d.meta['admin'] ?? '', /^127\.0\.0\.1:\d+$/, `${d.id} has an admin port`);
    const agents = services.filter((d) => d.name === 'agent').map((d) => d.meta['admin'] as string);
    const forwardedBefore = (await Promise.all(agents.map(scrape))).reduce((a, s) => a + s.sum('gamemesh_agent_messages_total', { result: 'forwarded' }), 0);

    const json = path.join(tmp, 'bots.json');
    const bot = new Proc('bot', process.execPath, [BIN, 'bot', '--login', `http://${httpAddr}/`, '--clients', '6', '--duration', '3', '--json', json], env);
    procs.push(bot);
    const exit = await bot.exited;
    assert.equal(exit.code, 0, `bot failed:\n${bot.stdout}\n${bot.stderr}`);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { format: string; clients: number; bucketsMs: number[]; requests: Record<string, { count: number; buckets: number[]; p50: number | null }>; messages: { count: number; buckets: number[] }; errors: Record<string, number> };
    assert.equal(report.format, 'gamemesh-bot/1');
    assert.equal(report.clients, 6);
    assert.deepEqual(report.errors, {});
    assert.equal(report.requests['login']?.count, 6);
    const earn = report.requests['earn gold'];
    assert.ok(earn && earn.count > 0 && earn.p50 !== null);
    assert.equal(earn.buckets.length, report.bucketsMs.length + 1);
    assert.equal(earn.buckets.reduce((a, n) => a + n, 0), earn.count, 'the histogram holds every sample');
    assert.equal(report.messages.buckets.reduce((a, n) => a + n, 0), report.messages.count);
    // One chat line for sure (the bots chat at random): social publishes it through the hub.
    const account = await logIn(`http://${httpAddr}/`, 'observer', 'observer-password');
    const player = playerClient(account, 'ws', { requestTimeoutMs: 5000 });
    t.after(() => player.close());
    await player.connect();
    await enterWorld(player, account.token);
    await player.request(ChatSendReq, ChatSendResp, { text: 'hello, metrics' });

    // Agents: forwarded messages moved by at least what the bots sent; the round trips were timed.
    let forwarded = 0;
    let roundTrips = 0;
    for (const admin of agents) {
      const s = await scrape(admin);
      forwarded += s.sum('gamemesh_agent_messages_total', { result: 'forwarded' });
      roundTrips += s.sum('gamemesh_agent_backend_roundtrip_seconds_count', { service: 'game' });
      assert.equal(s.types.get('gamemesh_agent_clients'), 'gauge');
      assert.ok((s.value('gamemesh_links_up', { peer_service: 'game' }) ?? 0) >= 1);
      assert.ok(s.value('process_resident_memory_bytes') !== undefined);
    }
    assert.ok(forwarded - forwardedBefore >= report.messages.count, `forwarded ${forwarded - forwardedBefore} >= ${report.messages.count} bot messages`);
    assert.ok(roundTrips > 0);
    // Backends: the client messages arrived on their links.
    const game = await scrape(await adminOf('game#0@dev'));
    assert.ok(game.sum('gamemesh_rpc_messages_received_total', { method: 'gamemesh.gateway.ClientMessage' }) > 0);
    assert.ok(game.sum('gamemesh_rpc_client_calls_total', { method: 'gamemesh.gateway.BindReq', code: 'ok' }) >= 6, 'the game bound every bot');
    const social = await scrape(await adminOf('social#0@dev'));
    assert.ok(social.sum('gamemesh_hub_client_messages_total', { result: 'published' }) > 0, 'social publishes chat to the hub');
    const hub = await scrape(await adminOf('hub#0@dev'));
    assert.ok((hub.value('gamemesh_hub_messages_total', { result: 'published' }) ?? 0) > 0);
    assert.ok((hub.value('gamemesh_hub_messages_total', { result: 'delivered' }) ?? 0) > 0);
    assert.ok((hub.value('gamemesh_hub_channels') ?? 0) >= 1);
    const login = await scrape(await adminOf('login#0@dev'));
    assert.ok((login.value('gamemesh_login_requests_total', { result: 'created' }) ?? 0) >= 7);
    assert.ok(login.sum('gamemesh_login_duration_seconds_count') >= 7);
    // The discovery server: its admin port is on its own line of output.
    const m = /discovery admin port on http:\/\/(\S+?)\//.exec(output);
    assert.ok(m, 'the discovery server printed its admin port');
    const disco = await scrape(m[1] as string);
    assert.ok((disco.value('gamemesh_discovery_requests_total', { op: 'watch' }) ?? 0) > 0);
    assert.ok((disco.value('gamemesh_discovery_requests_total', { op: 'register' }) ?? 0) >= 6);
    assert.ok((disco.value('gamemesh_discovery_revision') ?? 0) > 0);
    assert.ok((disco.value('gamemesh_discovery_sessions') ?? 0) >= 6);
    assert.ok((disco.value('gamemesh_discovery_watchers') ?? 0) >= 6);
    assert.ok((disco.value('gamemesh_discovery_fsync_seconds_count') ?? 0) > 0, 'the demo journals with fsync');
    assert.ok((disco.value('gamemesh_discovery_journal_batch_records_count') ?? 0) > 0);
    // And none of it without the token.
    for (const admin of [m[1] as string, ...agents]) assert.equal((await fetch(`http://${admin}/metrics`)).status, 401);
  });

  await t.test('the dashboard in a browser: live services, a new agent within 2 s, a KV edit that takes effect', { skip: noChromium !== undefined && !process.env['CI'] ? noChromium : false }, async () => {
    if (noChromium) assert.fail(`${noChromium}; CI is set, so this is a failure rather than a skip`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(10_000);
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
    page.on('console', (msg) => {
      // The refused save below is a 401 the page reports itself.
      if (msg.type() === 'error' && !/status of 401/.test(msg.text())) errors.push(`console: ${msg.text()}`);
    });
    await page.goto(`http://${dashAddr}/`);
    await page.locator('#conn[data-state="live"]').waitFor();
    for (const id of ['agent#0@dev', 'agent#1@dev', 'game#0@dev', 'arena#0@dev', 'social#0@dev', 'hub#0@dev', 'login#0@dev']) await page.locator(`#services tr[data-id="${id}"]`).waitFor();
    // Load from the admin ports: memory is shown for every service.
    await waitFor(async () => (await page.locator('#load tbody tr td:nth-child(4)').allTextContents()).every((t) => /MiB/.test(t)), 10_000, 'memory of every service');
    await page.locator('#routes tbody tr', { hasText: 'demo.EarnGoldReq' }).waitFor();

    // One more agent: on the page within 2 s of its registration.
    const agent = new Proc('agent-3', process.execPath, [BIN, 'agent', '--svcindex', '2', '--loglevel', 'warn'], env);
    procs.push(agent);
    await agent.waitForStdout(/agent agent#2@dev listening/, 15_000);
    const registered = performance.now();
    await page.locator('#services tr[data-id="agent#2@dev"]').waitFor({ timeout: 2000 });
    const seenMs = performance.now() - registered;
    assert.ok(seenMs < 2000, `the new agent appeared after ${Math.round(seenMs)} ms`);
    await page.locator('#log li[data-kind="join"][data-id="agent#2@dev"]').waitFor();
    await page.locator('#graph g[data-id="agent#2@dev"]').waitFor();

    // A client on agent#0 hears when its heartbeat period changes.
    const desc = (await sd.listServices('agent')).find((d) => d.id === 'agent#0@dev');
    const [host, port] = (desc?.meta['tcp'] ?? '').split(':');
    const client = await RawTcpClient.connect(host as string, Number(port));
    t.after(() => client.destroy());
    const ack = await client.handshake();
    assert.equal(ack.heartbeat_sec, 20);

    // Edit config/agent/heartbeat_sec on the page: first with a wrong token, then with the cluster's.
    await page.click('details[data-prefix="config/"] > summary');
    await page.click('details[data-prefix="config/agent/"] > summary');
    await page.click('.tree .key[data-key="config/agent/heartbeat_sec"]');
    assert.equal(await page.inputValue('#kv-value'), '20');
    await page.fill('#kv-value', '7');
    await page.fill('#kv-token', 'not-the-token');
    await page.click('#kv-save');
    await page.locator('#kv-status.error', { hasText: 'wrong token' }).waitFor();
    assert.equal(Buffer.from((await sd.get('config/agent/heartbeat_sec'))?.value ?? []).toString(), '20', 'a refused edit changes nothing');
    await page.fill('#kv-token', token);
    await page.click('#kv-save');
    await page.locator('#kv-status.ok', { hasText: 'saved config/agent/heartbeat_sec' }).waitFor();
    const pushed = await client.waitFrame((f) => f.msgId === C.HandshakeAck.id && f.seq === 0, 5000, 'the new heartbeat period');
    assert.equal(C.HandshakeAck.decode(pushed.body).heartbeat_sec, 7, 'the agent applied the edited value');
    await page.locator('.tree .key[data-key="config/agent/heartbeat_sec"]', { hasText: '= 7' }).waitFor();

    // Secrets are masked: the JWT key is in the KV, and nowhere on the page.
    await page.click('details[data-prefix="config/login/"] > summary');
    const secretKey = page.locator('.tree .key[data-key="config/login/jwt_secret"]');
    await secretKey.waitFor();
    assert.match((await secretKey.textContent()) ?? '', /•+ \(secret, \d+ bytes\)/);
    const secret = Buffer.from((await sd.get('config/login/jwt_secret'))?.value ?? []).toString();
    assert.ok(secret.length >= 32);
    await secretKey.click();
    assert.equal(await page.inputValue('#kv-value'), '');
    assert.ok(!(await page.content()).includes(secret), 'the secret is not on the page');
    const api = await (await fetch(`http://${dashAddr}/api/kv?prefix=config/login/`)).text();
    assert.ok(!api.includes(secret), 'nor in the API');

    const shot = process.env['GAMEMESH_DASHBOARD_SCREENSHOT'];
    if (shot) {
      await page.click('details[data-prefix="config/login/"] > summary');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 20_000);
    }

    // The agent leaves: its row goes, and the log says so.
    await agent.stop();
    await page.locator('#services tr[data-id="agent#2@dev"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('#log li[data-kind="leave"][data-id="agent#2@dev"]').waitFor();
    assert.deepEqual(errors, []);
  });
});
