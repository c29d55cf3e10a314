import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { joinTicks, leaveTicks, type Ticking } from '../src/net/tick-groups.js';
import { dialTcp, listenTcp } from '../src/net/tcp.js';

test('tick groups: members of one period all tick; one leaving in its own tick skips nobody; a member that left no longer ticks', async () => {
  const counts = [0, 0, 0];
  const members: Ticking[] = counts.map((_, i) => ({
    tick: () => {
      counts[i]!++;
      if (i === 0) leaveTicks(members[0]!, 10);
    },
  }));
  for (const m of members) joinTicks(m, 10);
  const deadline = Date.now() + 5000;
  while ((counts[1]! < 3 || counts[2]! < 3) && Date.now() < deadline) await sleep(10);
  assert.equal(counts[0], 1, 'the member that left during its first tick ticked once');
  assert.ok(counts[1]! >= 3 && counts[2]! >= 3, `the others kept ticking: ${counts.join(', ')}`);
  leaveTicks(members[1]!, 10);
  leaveTicks(members[2]!, 10);
  const frozen = [...counts];
  await sleep(60);
  assert.deepEqual(counts, frozen, 'nothing ticks after leaving');
  leaveTicks(members[1]!, 10); // leaving twice is harmless
});

test('sessions sharing a tick group still time out one by one, and a changed period moves a session to another group', async (t) => {
  const closed: string[] = [];
  const listener = await listenTcp({ host: '127.0.0.1', port: 0, idleTimeoutMs: 150, heartbeatMs: 0 }, (s) => s.on('close', (reason) => closed.push(reason)));
  t.after(() => listener.close());
  const a = await dialTcp('127.0.0.1', listener.port, { idleTimeoutMs: 0, heartbeatMs: 0 });
  const b = await dialTcp('127.0.0.1', listener.port, { idleTimeoutMs: 0, heartbeatMs: 50 });
  t.after(() => {
    a.close('test over');
    b.close('test over');
  });
  const deadline = Date.now() + 5000;
  while (listener.sessions.size < 2 && Date.now() < deadline) await sleep(5);
  const [sa, sb] = [...listener.sessions];
  // b heartbeats every 50 ms and stays; a is silent and goes after about 150 ms.
  while (closed.length === 0 && Date.now() < deadline) await sleep(10);
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /idle for over 150 ms/);
  assert.equal(sa?.closed || sb?.closed, true);
  assert.equal(listener.sessions.size, 1, 'the heartbeating client is still there');
  // A longer idle window on the survivor: it moves to a slower group and is not cut at 150 ms.
  const survivor = [...listener.sessions][0]!;
  survivor.setTimeouts({ idleTimeoutMs: 400 });
  b.setTimeouts({ heartbeatMs: 0 });
  await sleep(250);
  assert.equal(survivor.closed, false, 'not cut before its new window');
  while (!survivor.closed && Date.now() < deadline) await sleep(10);
  assert.match(closed[1] ?? '', /idle for over 400 ms/);
});
