/**
 * `--loglevel debug` logs every message in and out (name, size, peer) on the
 * agent and on a backend, as processes started the way a user starts them,
 * and `--mutemsglog` mutes names, by full name or without the package.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { GameClient, tcpTransport } from '../src/client-node/index.js';
import { pushRoutes, spawnAgent, spawnGwBackend } from './helpers/gateway.js';
import { GW, routeTable } from './helpers/gw-proto.js';
import { startDiscovery, tempDir, waitFor } from './helpers/proc.js';

interface Line {
  dir?: string;
  msgName?: string;
  size?: number;
  peer?: string;
  msg?: string;
}

function lines(dir: string, stem: string): Line[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${stem}.`) && f.endsWith('.log'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n'))
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
}

test('message logs at debug on the agent and a backend, muted by name', { timeout: 30_000 }, async (t) => {
  const disco = await startDiscovery(t);
  const dir = tempDir(t, 'gamemesh-msglog-');
  await pushRoutes(disco.addr, dir, routeTable([[GW.LoginReq, 'gw', 'pass'], [GW.EchoReq, 'gw', 'pass']]));
  const debug = (stem: string) => ['--loglevel', 'debug', '--logfile', path.join(dir, `${stem}.log`), '--mutemsglog', `LoginReq|${GW.LoginResp.name}`];
  const [agent, backend] = await Promise.all([spawnAgent(t, disco.addr, debug('agent')), spawnGwBackend(t, disco.addr, debug('backend'))]);
  const client = new GameClient({ transport: () => tcpTransport(agent.host, agent.tcpPort), reconnect: false, requestTimeoutMs: 3000 });
  t.after(() => client.close());
  await client.connect();
  await waitFor(async () => (await client.request(GW.EchoReq, GW.EchoResp, { text: 'warm' }).then(() => true, () => false)), 8000, 'the backend through the agent');
  await client.request(GW.LoginReq, GW.LoginResp, { user: 'quiet' });
  await client.request(GW.EchoReq, GW.EchoResp, { text: 'x'.repeat(100), n: 7 });
  client.close();
  // A graceful stop flushes the log files (the fixture itself only exits when its stdin closes).
  backend.proc.child.kill('SIGTERM');
  await agent.proc.kill('SIGTERM');
  await waitFor(() => lines(dir, 'backend').some((l) => l.msg === 'stopped'), 10_000, 'the backend to stop and flush its log');

  const a = lines(dir, 'agent').filter((l) => l.dir);
  const b = lines(dir, 'backend').filter((l) => l.dir);
  const has = (ls: Line[], dirn: string, name: string, peer: RegExp, size?: number) =>
    ls.some((l) => l.dir === dirn && l.msgName === name && peer.test(l.peer ?? '') && (size === undefined || l.size === size) && l.msg === `${dirn} ${name}`);
  const echoBytes = GW.EchoReq.encode({ text: 'x'.repeat(100), n: 7 }).length;
  // The agent: the client's request in, its envelope to the backend out, the answer back, and out to the client (by id: the agent knows only routed names).
  assert.ok(has(a, 'recv', GW.EchoReq.name, /^client \d+$/, echoBytes), 'agent: EchoReq from the client');
  assert.ok(has(a, 'send', 'gamemesh.gateway.ClientMessage', /^gw#0@dev$/), 'agent: ClientMessage to the backend');
  assert.ok(has(a, 'recv', 'gamemesh.gateway.ToClients', /^gw#0@dev$/), 'agent: ToClients from the backend');
  assert.ok(has(a, 'send', `#${GW.EchoResp.id}`, /^client \d+$/), 'agent: the answer to the client');
  // The backend: the client message by its own name, the answer by its name.
  assert.ok(has(b, 'recv', GW.EchoReq.name, /^agent#0@dev\/\d+$/, echoBytes), 'backend: EchoReq');
  assert.ok(has(b, 'send', GW.EchoResp.name, /^agent#0@dev\/\d+$/), 'backend: EchoResp');
  assert.ok(has(b, 'recv', 'gamemesh.gateway.ClientMessage', /^agent#0@dev$/), 'backend: the envelope');
  // Muted: by the name without its package (LoginReq), and by full name (LoginResp).
  for (const [who, ls] of [['agent', a], ['backend', b]] as const) {
    assert.ok(!ls.some((l) => l.msgName === GW.LoginReq.name || l.msgName === GW.LoginResp.name), `${who}: muted names were logged`);
  }
});
