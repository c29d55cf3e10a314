/**
 * The official pomelo browser client (../shared/vendor/pomelo-jsclient-websocket,
 * loaded from there at test time, never copied) plays the demo cluster
 * through an agent's pomelo WebSocket port, in headless Chromium (Debian's,
 * driven by playwright-core). The page has `window.Protocol` from the npm
 * package pomelo-protocol, `window.protobuf` from pomelo-protobuf (one page
 * with it, one without, so both JSON and pomelo-protobuf bodies are sent),
 * and a few lines of EventEmitter. The agents offer protos and a 1 s
 * heartbeat. Steps: init and handshake, enter the game with the login
 * token, earn gold and level up, world chat with a native gamemesh client
 * both ways, heartbeats past the idle window, and a kick on duplicate login.
 *
 * Without /usr/bin/chromium or the vendor client the test is skipped, or
 * fails when CI is set (.ci/run installs chromium; ../shared is beside the clone).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { GameClient } from '../src/client/index.js';
import { tcpTransport } from '../src/client-node/index.js';
import { DiscoveryClient } from '../src/discovery/client.js';
import { HEARTBEAT_KEY } from '../src/gateway/routes.js';
import type { Cluster } from '../src/up/supervisor.js';
import { ChatMsg, ChatSendReq, ChatSendResp, EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp } from '../demo/gen/index.js';
import { chromiumMissing, launchChromium } from './helpers/browser.js';
import { PomeloTestClient } from './helpers/pomelo-client.js';
import { startDemoCluster } from './helpers/demo-cluster.js';
import { ROOT, waitFor } from './helpers/proc.js';

const VENDOR_CLIENT = path.join(ROOT, '..', 'shared', 'vendor', 'pomelo-jsclient-websocket', 'pomelo-client.js');
const PROTOCOL_JS = path.join(ROOT, 'node_modules', 'pomelo-protocol', 'lib', 'protocol.js');
const PROTOBUF_JS = path.join(ROOT, 'node_modules', 'pomelo-protobuf', 'lib', 'client', 'protobuf.js');
const STEP_MS = 10_000;

const missing = chromiumMissing() ?? (!existsSync(VENDOR_CLIENT) ? `${VENDOR_CLIENT} is missing (../shared must be beside the clone)` : undefined);

/**
 * The test page. Each peer script ends with `module.exports = ...`, so a
 * `module` object is there for it to fill, and the page takes what it
 * exported. `play` wraps the callback API in promises for the test.
 */
function pageHtml(withProtobuf: boolean): string {
  return `<!doctype html><meta charset="utf-8"><title>pomelo client</title>
<script>
  function EventEmitter() {}
  EventEmitter.prototype.on = function (ev, fn) { var m = this._events || (this._events = {}); (m[ev] || (m[ev] = [])).push(fn); return this; };
  EventEmitter.prototype.addListener = EventEmitter.prototype.on;
  EventEmitter.prototype.emit = function (ev) { var args = [].slice.call(arguments, 1); var fns = ((this._events || {})[ev] || []).slice(); for (var i = 0; i < fns.length; i++) fns[i].apply(this, args); return fns.length > 0; };
  EventEmitter.prototype.removeAllListeners = function (ev) { if (this._events) { if (ev) delete this._events[ev]; else this._events = {}; } return this; };
  window.EventEmitter = EventEmitter;
  var module = { exports: {} };
</script>
<script src="/protocol.js"></script>
<script>window.Protocol = module.exports; module = { exports: {} };</script>
${withProtobuf ? '<script src="/protobuf.js"></script>\n<script>window.protobuf = module.exports; module = { exports: {} };</script>' : ''}
<script>
  // What the client hands to the message encoder: the route (or its code) and the first byte of the body.
  window.sent = [];
  var encode = Protocol.Message.encode;
  Protocol.Message.encode = function (id, type, compressRoute, route, msg) {
    sent.push({ id: id, compressRoute: compressRoute, route: route, first: msg && msg.length ? msg[0] : -1 });
    return encode.apply(this, arguments);
  };
  // Heartbeat packages the client writes.
  window.heartbeatsSent = 0;
  var wsSend = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { if (new Uint8Array(data)[0] === 3) heartbeatsSent++; return wsSend.call(this, data); };
</script>
<script src="/pomelo-client.js"></script>
<script>
  function within(p, what) {
    return Promise.race([p, new Promise(function (_, reject) { setTimeout(function () { reject(new Error(what + ': no answer within 5 s; events ' + JSON.stringify(play.events))); }, 5000); })]);
  }
  window.play = {
    events: [],
    chat: [],
    kicks: [],
    init: function (url) {
      var u = new URL(url);
      return within(new Promise(function (resolve) { pomelo.init({ host: u.hostname, port: Number(u.port), user: {} }, function () { resolve(true); }); }), 'init');
    },
    request: function (route, msg) { return within(new Promise(function (resolve) { pomelo.request(route, msg, resolve); }), route); },
  };
  pomelo.on('onChat', function (m) { play.chat.push(m.from + ':' + m.text); });
  pomelo.on('onKick', function (k) { play.kicks.push(k); });
  ['close', 'heartbeat timeout', 'io-error', 'error'].forEach(function (ev) { pomelo.on(ev, function () { play.events.push(ev); }); });
</script>`;
}

interface Opened {
  page: Page;
  errors: string[];
}

/**
 * The test page and the peer scripts, read from disk at each request, from
 * a plain HTTP server on 127.0.0.1: a page Chromium sees on the loopback
 * network may open WebSockets to other loopback ports.
 */
async function servePages(): Promise<{ base: string; close(): Promise<void> }> {
  const files: Record<string, string> = { '/protocol.js': PROTOCOL_JS, '/protobuf.js': PROTOBUF_JS, '/pomelo-client.js': VENDOR_CLIENT };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const file = files[url];
    if (url === '/protobuf.html' || url === '/json.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(pageHtml(url === '/protobuf.html'));
    } else if (file) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file, 'utf8'));
    } else if (url === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function openPage(browser: Browser, base: string, withProtobuf: boolean): Promise<Opened> {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    // pomelo-client logs every close as an error ("socket close: ..."): the kick below closes on purpose.
    if (msg.type() === 'error' && !msg.text().startsWith('socket close')) errors.push(`console: ${msg.text()}`);
  });
  await page.goto(new URL(withProtobuf ? 'protobuf.html' : 'json.html', base).href);
  return { page, errors };
}

type Json = Record<string, unknown>;

async function request(page: Page, route: string, msg: Json = {}): Promise<Json> {
  return page.evaluate(([r, m]) => (globalThis as unknown as { play: { request(r: string, m: object): Promise<Json> } }).play.request(r, m), [route, msg] as const);
}

interface LoginBody {
  token: string;
  agent: { tcp?: string; pomelo_ws?: string; pomelo_tcp?: string };
}

async function login(loginUrl: string, account: string): Promise<LoginBody> {
  const res = await fetch(new URL('/api/login', loginUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account, password: 'test-password' }) });
  assert.equal(res.status, 200);
  return (await res.json()) as LoginBody;
}

/** Logs in (as the page's game would, over HTTP), then the page's client connects to the pomelo port login named and enters the game. */
async function enter(page: Page, loginUrl: string, account: string): Promise<{ token: string; player: Json }> {
  const answer = await login(loginUrl, account);
  assert.ok(answer.agent.pomelo_ws, `login names a pomelo WebSocket port: ${JSON.stringify(answer.agent)}`);
  assert.equal(await page.evaluate((u) => (globalThis as unknown as { play: { init(u: string): Promise<boolean> } }).play.init(u), answer.agent.pomelo_ws), true);
  const entered = await request(page, 'game.player.enterGame', { token: answer.token });
  return { token: answer.token, player: entered['player'] as Json };
}

const pageState = (page: Page) => page.evaluate(() => {
  const w = globalThis as unknown as { play: { chat: string[]; kicks: Json[]; events: string[] }; sent: Array<{ route: string | number; compressRoute: number; first: number }>; heartbeatsSent: number };
  return { chat: w.play.chat, kicks: w.play.kicks, events: w.play.events, sent: w.sent, heartbeatsSent: w.heartbeatsSent };
});

test('the official pomelo browser client plays the demo through the pomelo WebSocket port', { skip: missing !== undefined && !process.env['CI'] ? missing : false, timeout: 90_000 }, async (t) => {
  if (missing) assert.fail(`${missing}; CI is set, so this is a failure rather than a skip`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gamemesh-pomelo-web-'));
  let output = '';
  let cluster: Cluster | undefined;
  let browser: Browser | undefined;
  let native: GameClient | undefined;
  let intruder: PomeloTestClient | undefined;
  let pages: { base: string; close(): Promise<void> } | undefined;
  t.after(async () => {
    intruder?.destroy();
    await pages?.close();
    native?.close();
    await browser?.close().catch(() => {});
    await cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });
  try {
    const started = await startDemoCluster(path.join(tmp, 'data'), { color: false, stopTimeoutMs: 5000, write: (text) => (output += text) });
    cluster = started.cluster;
    const { sdPort, httpPort } = started;
    const loginUrl = `http://127.0.0.1:${httpPort}/`;
    pages = await servePages();
    const base = pages.base;
    // A 1 s heartbeat, live from the KV, so the test sees several of them.
    // The cluster token gamemesh up generated for the demo, in its data folder.
    const token = readFileSync(path.join(cluster.vars['data'] as string, 'demo', 'cluster.token'), 'utf8').trim();
    const sd = await DiscoveryClient.connect({ addr: `127.0.0.1:${sdPort}`, name: 'pomelo-web-test', token });
    try {
      await sd.put(`config/${HEARTBEAT_KEY}`, '1');
    } finally {
      await sd.close();
    }
    browser = await launchChromium();
    const alice = await openPage(browser, base, true);
    const carol = await openPage(browser, base, false);

    // 1-2: init, handshake, heartbeat; the enter-game request with the token from login.
    const a = await enter(alice.page, loginUrl, 'web-alice');
    assert.deepEqual(a.player, { name: 'web-alice', level: 1, gold: 0 });
    const c = await enter(carol.page, loginUrl, 'web-carol');
    assert.deepEqual(c.player, { name: 'web-carol', level: 1, gold: 0 });

    // 3: earn gold until a level up is affordable, then level up.
    const poor = await request(alice.page, 'game.player.levelUp');
    assert.deepEqual(poor, { code: 500, error: 'application', message: 'level 2 costs 100 gold; you have 0' });
    let gold = 0;
    for (let i = 0; gold < 100; i++) {
      assert.ok(i < 20, 'earning 100 gold took over 20 requests');
      const earned = await request(alice.page, 'game.player.earnGold');
      gold = (earned['player'] as Json)['gold'] as number;
    }
    assert.deepEqual(await request(alice.page, 'game.player.levelUp'), { player: { name: 'web-alice', level: 2, gold: gold - 100 }, cost: 100 });

    // 4: world chat: a native gamemesh client's message reaches both pages, and theirs reach it.
    for (const p of [alice.page, carol.page]) assert.equal((await request(p, 'social.chat.join', { token: p === alice.page ? a.token : c.token }))['online'] !== undefined, true);
    const bobLogin = await login(loginUrl, 'native-bob');
    const [host = '', port = ''] = (bobLogin.agent.tcp ?? '').split(':');
    native = new GameClient({ transport: () => tcpTransport(host, Number(port)), token: bobLogin.token, reconnect: false });
    await native.connect();
    const nativeChat: string[] = [];
    native.on(ChatMsg, (m) => nativeChat.push(`${m.from}:${m.text}`));
    await native.request(EnterGameReq, EnterGameResp, { token: bobLogin.token });
    await native.request(JoinChatReq, JoinChatResp, { token: bobLogin.token });
    await native.request(ChatSendReq, ChatSendResp, { text: 'hello pomelo clients' });
    for (const p of [alice.page, carol.page]) await waitFor(async () => (await pageState(p)).chat.includes('native-bob:hello pomelo clients'), STEP_MS, 'the native chat on a page', 25);
    assert.deepEqual(await request(carol.page, 'social.chat.send', { text: 'hi from a JSON page' }), {});
    assert.deepEqual(await request(alice.page, 'social.chat.send', { text: 'hi from a protobuf page' }), {});
    await waitFor(() => nativeChat.includes('web-carol:hi from a JSON page') && nativeChat.includes('web-alice:hi from a protobuf page'), STEP_MS, 'the pages\' chat at the native client');

    // The client compressed routes with the dictionary, and alice's page sent pomelo-protobuf bodies, carol's JSON.
    const sa = (await pageState(alice.page)).sent;
    const sc = (await pageState(carol.page)).sent;
    assert.ok(sa.length > 0 && sa.every((m) => m.compressRoute === 1 && typeof m.route === 'number'), `routes by code: ${JSON.stringify(sa.slice(0, 3))}`);
    assert.ok(sa.some((m) => m.first !== -1 && m.first !== 0x7b), 'a protobuf body from the page with pomelo-protobuf');
    assert.ok(sc.every((m) => m.first === 0x7b), 'JSON bodies from the page without it');

    // Heartbeats: the client sends one per second after each server heartbeat; past the 3 s idle window the pages are still connected.
    const hb0 = (await pageState(alice.page)).heartbeatsSent;
    await new Promise((r) => setTimeout(r, 4000));
    const later = await pageState(alice.page);
    assert.ok(later.heartbeatsSent - hb0 >= 2, `heartbeats sent in 4 s: ${later.heartbeatsSent - hb0}`);
    assert.deepEqual(later.events, [], 'no close, heartbeat timeout or error');
    assert.equal(((await request(alice.page, 'game.player.stats'))['player'] as Json)['level'], 2);

    // 5: a duplicate login (another pomelo client entering as web-alice) kicks the page.
    const again = await login(loginUrl, 'web-alice');
    intruder = await PomeloTestClient.connect(again.agent.pomelo_tcp ?? assert.fail('no pomelo_tcp'));
    await intruder.handshake();
    assert.equal(((await intruder.request('game.player.enterGame', { token: again.token }))['player'] as Json)['level'], 2);
    await waitFor(async () => (await pageState(alice.page)).events.includes('close'), STEP_MS, 'the kicked page to be closed', 25);
    assert.deepEqual((await pageState(alice.page)).kicks, [{ reason: 'logged in from another client', code: 9 }]);
    assert.deepEqual((await pageState(carol.page)).events, [], 'the other page is untouched');

    // After a kick, pomelo-client's heartbeat timer (never cleared on a close) may still write to the closed
    // socket, which Chromium reports on the console: the vendor client's own behaviour, on the kicked page only.
    const afterKick = 'console: WebSocket is already in CLOSING or CLOSED state.';
    assert.deepEqual([...alice.errors.filter((e) => e !== afterKick), ...carol.errors], []);
  } catch (err) {
    t.diagnostic('cluster output (last 40 lines):');
    for (const line of output.split('\n').slice(-40)) t.diagnostic(line);
    throw err;
  }
});
