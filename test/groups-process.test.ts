/**
 * Groups on a GatewayBackend with real processes: a discovery process, two
 * `gamemesh agent` processes, and the room-backend fixture (service "rooms"),
 * with SDK clients on both agents. Shown: one broadcast reaches the members
 * on both agents (and not the sender it excepts), handed to each agent once;
 * members are removed when their connection closes; an empty group is dropped.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, GameClient, tcpTransport, wsTransportNode } from '../src/client-node/index.js';
import { pushRoutes, spawnAgent, type AgentProc } from './helpers/gateway.js';
import { GW, routeTable } from './helpers/gw-proto.js';
import { FIXTURES, spawnNode, startDiscovery, tempDir, waitFor, type Cleanup } from './helpers/proc.js';

function client(t: Cleanup, agent: AgentProc, ws: boolean): { c: GameClient; notices: string[] } {
  const notices: string[] = [];
  const c = new GameClient({ transport: () => (ws ? wsTransportNode(agent.wsUrl) : tcpTransport(agent.host, agent.tcpPort)), reconnect: false, requestTimeoutMs: 3000 });
  c.on(GW.Notice, (n) => notices.push(n.text));
  t.after(() => c.close());
  return { c, notices };
}

const echo = (c: GameClient, text: string) => c.request(GW.EchoReq, GW.EchoResp, { text });

async function eventually<T>(attempt: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ClientError) || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

test('a group broadcast reaches members on both agents, once per agent; members leave on close; an empty group is dropped', { timeout: 40_000 }, async (t) => {
  const disco = await startDiscovery(t);
  await pushRoutes(disco.addr, tempDir(t, 'gamemesh-groups-'), routeTable([[GW.EchoReq, 'rooms', 'pass']]));
  const backendP = spawnNode(t, path.join(FIXTURES, 'room-backend.js'), ['--sdaddr', disco.addr, '--loglevel', 'warn'], 'room-backend');
  const [a1, a2] = await Promise.all([spawnAgent(t, disco.addr, ['--svcindex', '0']), spawnAgent(t, disco.addr, ['--svcindex', '1']), backendP.waitForStdout(/room-backend (\S+) ready\n/, 10_000)]);
  const members = [client(t, a1, false), client(t, a1, true), client(t, a1, false), client(t, a2, false), client(t, a2, true), client(t, a2, false)];
  await Promise.all(members.map((m) => m.c.connect()));
  for (const m of members) await eventually(() => echo(m.c, 'hello'), 10_000);

  for (const [i, m] of members.entries()) assert.equal((await echo(m.c, 'join:G')).n, i + 1);
  const sender = members[0] as (typeof members)[number];
  // The answer follows the GroupSend on the same link, so it is delivered once the answer is.
  assert.equal((await echo(sender.c, 'bcast:G:one')).n, 2, 'one GroupSend per agent with members');
  await waitFor(() => members.slice(1).every((m) => m.notices.includes('one')), 5000, 'members on both agents got the broadcast');
  assert.deepEqual(sender.notices, [], 'the excepted sender got nothing');
  for (const m of members.slice(1)) assert.deepEqual(m.notices, ['one'], 'exactly once');

  // A non-member is not reached, and leave() takes a member out.
  const outsider = client(t, a2, false);
  await outsider.c.connect();
  await eventually(() => echo(outsider.c, 'hello'), 5000);
  assert.equal((await echo(members[5]!.c, 'leave:G')).n, 5);

  // Closing one member on each agent: the group shrinks by itself.
  members[1]!.c.close();
  members[4]!.c.close();
  await waitFor(async () => (await echo(sender.c, 'size:G')).n === 3, 8000, 'closed members removed');
  await backendP.waitForStdout(/lost \S+ closed\n[\s\S]*lost \S+ closed\n/, 5000);
  await echo(members[3]!.c, 'bcast:G:two');
  await waitFor(() => sender.notices.includes('two') && members[2]!.notices.includes('two'), 5000, 'the remaining members got the second broadcast');
  await sleep(200);
  assert.deepEqual(members[3]!.notices, ['one'], 'the sender is excepted');
  assert.deepEqual(members[5]!.notices, ['one'], 'a member that left gets nothing');
  assert.deepEqual(outsider.notices, [], 'a non-member gets nothing');
  assert.deepEqual(members[1]!.notices, ['one']);

  // The last members leave: the group is dropped.
  for (const i of [0, 2, 3]) await echo(members[i]!.c, 'leave:G');
  assert.equal((await echo(sender.c, 'size:G')).text, 'none');
});
