/**
 * Reconnection to rooms with real processes (a discovery process, two
 * agents, one room-backend with --reconnect-sec): a client whose agent is
 * killed with -9 comes back through the other agent and the SDK takes its
 * seat back by itself; a client that reconnects by token from a new
 * connection on another agent gets the same seat; one that does not come
 * back within the window loses its seat (onLeave "expired") and its token
 * is refused afterwards.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tcpTransport } from '../src/client-node/index.js';
import type { AgentProc } from './helpers/gateway.js';
import { GW } from './helpers/gw-proto.js';
import { waitFor } from './helpers/proc.js';
import { expectCode, roomClient, startRoomCluster, whenLinked } from './helpers/rooms.js';

const esc = (s: string) => s.replace(/[.~#@]/g, '\\$&');

test('a seat is kept within the reconnection window (on any agent, after kill -9 of the agent) and lost after it', { timeout: 60_000 }, async (t) => {
  const { agents, backends } = await startRoomCluster(t, { backends: 1, backendArgs: [['--reconnect-sec', '2']] });
  const [a0, a1] = agents as [AgentProc, AgentProc];
  const host = backends[0]!;
  const witness = roomClient(t, a1);
  // Connects to agent 0 first; every reconnect goes to agent 1.
  let dials = 0;
  const roamer = roomClient(t, a0, { reconnect: true, transport: () => (dials++ === 0 ? tcpTransport(a0.host, a0.tcpPort) : tcpTransport(a1.host, a1.tcpPort)) });
  const leaver = roomClient(t, a0);
  await Promise.all([witness.c.connect(), roamer.c.connect(), leaver.c.connect()]);
  await whenLinked([witness.c, roamer.c]);

  const room = await witness.c.create('match');
  const roamerRoom = await roamer.c.joinById(room.id);
  const leaverRoom = await leaver.c.joinById(room.id);
  assert.equal(roamerRoom.reconnectSec, 2);
  const roamerLeft: string[] = [];
  roamerRoom.onLeave((i) => roamerLeft.push(i.code));

  // 1. The roamer's agent dies: the host keeps its seat, the SDK reconnects through agent 1 and rejoins by token.
  await a0.proc.kill('SIGKILL');
  await host.waitForStdout(new RegExp(`dropped ${esc(room.id)} ${roamerRoom.seat}\\n`), 8000);
  await host.waitForStdout(new RegExp(`back ${esc(room.id)} ${roamerRoom.seat}\\n`), 10_000);
  assert.ok(dials >= 2, 'the roamer reconnected through agent 1');
  witness.c.send(GW.PushReq, { text: 'after the crash' });
  await waitFor(() => roamer.notices.includes('after the crash'), 5000, 'the roamer hears the room again');
  assert.deepEqual(roamerLeft, [], 'the roamer never left');
  assert.ok(!new RegExp(`left ${esc(room.id)} ${roamerRoom.seat} `).test(host.stdout), 'the host never freed its seat');

  // 2. The leaver (also on the dead agent, no automatic reconnect) does not come back: its seat goes after 2 s.
  await host.waitForStdout(new RegExp(`left ${esc(room.id)} ${leaverRoom.seat} expired\\n`), 8000);
  const late = roomClient(t, a1);
  await late.c.connect();
  await expectCode(late.c.reconnectRoom(room.id, leaverRoom.reconnectToken), 'reconnect_expired');

  // 3. A new connection on another agent takes a seat back by token, within the window.
  const first = roomClient(t, a1);
  await first.c.connect();
  const seated = await first.c.joinById(room.id);
  first.c.close();
  await host.waitForStdout(new RegExp(`dropped ${esc(room.id)} ${seated.seat}\\n`), 8000);
  const again = roomClient(t, a1);
  await again.c.connect();
  const back = await again.c.reconnectRoom(room.id, seated.reconnectToken);
  assert.equal(back.seat, seated.seat, 'the same seat');
  assert.equal(back.id, room.id);
  // Past the window it is still there: the reconnect cancelled the expiry.
  await sleep(2500);
  assert.ok(!new RegExp(`left ${esc(room.id)} ${seated.seat} `).test(host.stdout), 'the seat was not freed after the reconnect');
  const sizes: number[] = [];
  again.c.on(GW.Notice, (n) => sizes.push(n.n));
  witness.c.send(GW.PushReq, { text: 'seat kept' });
  await waitFor(() => again.notices.includes('seat kept') && roamer.notices.includes('seat kept'), 5000, 'both reconnected members hear the room');
  // The room's size rides on the broadcast: witness, roamer and the reconnected seat.
  assert.deepEqual(sizes, [3]);
});
