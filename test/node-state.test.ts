/**
 * The `available` flag, set by `gamemesh sd disable ID` and `enable ID`
 * (real CLI processes) against live nodes: a disabled node gets no new work
 * from selection by service name, from lookups by type or from login's
 * agent choice, while calls by id on its existing link keep working; enable
 * brings it back. Also addrsByType and pickAddr themselves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DiscoveryClient } from '../src/discovery/client.js';
import { nodeStateKey } from '../src/discovery/node-state.js';
import { startLogin } from '../src/login/server.js';
import { unpackAddr } from '../src/service/identity.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, serveEcho, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { runCli, waitFor } from './helpers/proc.js';

const sd = (addr: string, ...args: string[]) => runCli(['sd', '--addr', addr, ...args]);

test('sd disable/enable: no new work by name, by type or from login; existing links keep working', { timeout: 60_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const echoes = [];
  for (const i of [0, 1, 2]) echoes.push(await startNode(defer, addr, { name: 'echo', config: { svcindex: i } }, serveEcho));
  const caller = await startNode(defer, addr, { name: 'caller', dependencies: ['echo'] });
  await waitFor(() => caller.instances('echo').length === 3, 5000, 'three echo instances');
  const type = unpackAddr(echoes[0]!.addr).type;
  assert.deepEqual(await caller.addrsByType(type), echoes.map((e) => e.logicalAddress), 'every echo, in address order');
  const picked = await caller.pickAddr(type, 'player-42');
  assert.equal(await caller.pickAddr(type, 'player-42'), picked, 'the same key picks the same node');
  assert.equal(await caller.pickAddr(200), undefined, 'no node of an unused type');

  const off = await sd(addr, 'disable', 'echo#1@dev');
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /^echo#1@dev is not available/);
  await waitFor(() => caller.instances('echo').length === 2, 2000, 'the caller to see echo#1 disabled');
  assert.deepEqual(caller.nodeState('echo#1@dev'), { available: false, drain: false });
  const servers = new Set<string>();
  for (let i = 0; i < 60; i++) servers.add((await caller.call('echo', EchoReq, EchoResp, { text: `n${i}` })).server);
  assert.deepEqual([...servers].sort(), ['echo#0@dev', 'echo#2@dev'], 'selection by name skips the disabled node');
  assert.equal((await caller.call({ id: 'echo#1@dev' }, EchoReq, EchoResp, { text: 'by id' })).server, 'echo#1@dev', 'its link still works');
  assert.equal((await caller.call({ addr: echoes[1]!.logicalAddress }, EchoReq, EchoResp, { text: 'by addr' })).server, 'echo#1@dev');
  assert.deepEqual(await caller.addrsByType(type), [echoes[0]!.logicalAddress, echoes[2]!.logicalAddress]);
  for (let k = 0; k < 20; k++) assert.notEqual(await caller.pickAddr(type, `key${k}`), echoes[1]!.logicalAddress);
  const view = await sd(addr, 'viewsvc');
  assert.match(view.stdout, /^echo\techo#1@dev\t[^\n]*\t\{"available":false\}$/m, 'viewsvc shows the state');
  assert.match(view.stdout, /^echo\techo#0@dev\t[^\t\n]*\t[^\t\n]*$/m, 'and nothing for the others');

  const on = await sd(addr, 'enable', 'echo#1@dev');
  assert.equal(on.code, 0, on.stderr);
  await waitFor(() => caller.instances('echo').length === 3, 2000, 'echo#1 back in selection');
  assert.equal((await caller.discovery.get(nodeStateKey('echo#1@dev'))), undefined, 'an all-default state leaves no record');
  assert.equal((await caller.addrsByType(type)).length, 3);

  const typo = await sd(addr, 'disable', 'echo#9@dev');
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /^gamemesh sd: no registered service has id echo#9@dev/);
});

test("sd disable: login sends no new player to a disabled agent", { timeout: 60_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const node = await startNode(defer, addr, { name: 'login' });
  const login = await startLogin({ node, host: '127.0.0.1', port: 0, demo: true, jwtSecret: 'node-state-test-secret-0123456789abcdef', rateLimit: { burst: 1000, perSec: 1000 } });
  defer(() => login.stop());
  const agents = await DiscoveryClient.connect({ addr, name: 'fake-agents' });
  defer(() => agents.close());
  for (const i of [1, 2]) {
    await agents.register({ name: 'agent', id: `agent#${i}@dev`, host: '127.0.0.1', port: 7000 + i, meta: { group: 'dev', tcp: `127.0.0.1:${7100 + i}`, online: '0', capacity: '1000' } });
  }
  const sentTo = async (n: number): Promise<Set<string>> => {
    const to = new Set<string>();
    for (let i = 0; i < n; i++) {
      const res = await fetch(new URL('/api/login', login.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: `p${i}`, password: 'password1' }) });
      assert.equal(res.status, 200);
      to.add(((await res.json()) as { agent: { tcp: string } }).agent.tcp);
    }
    return to;
  };
  await waitFor(async () => (await sentTo(4)).size === 2, 5000, 'players spread over both agents');
  assert.equal((await sd(addr, 'disable', 'agent#1@dev')).code, 0);
  await waitFor(() => node.nodeState('agent#1@dev').available === false, 2000, 'login to see the state');
  assert.deepEqual([...(await sentTo(10))], ['127.0.0.1:7102']);
  assert.equal((await sd(addr, 'enable', 'agent#1@dev')).code, 0);
  await waitFor(async () => (await sentTo(4)).has('127.0.0.1:7101'), 5000, 'agent#1 to get players again');
});
