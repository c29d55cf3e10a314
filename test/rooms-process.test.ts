/**
 * Rooms and matchmaking with real processes: a discovery process, two
 * `gamemesh agent` processes and two room-backend fixture processes
 * (service "rooms", room type "match"), with SDK clients on both agents.
 * Shown: 100 concurrent joinOrCreate calls all get a seat and no room is
 * ever past maxClients; rooms are packed; a room's broadcast reaches its
 * members only, with what onJoin sent arriving after RoomJoined; leave and
 * dispose; typed errors (unknown type, a refusing onJoin, a full room by id,
 * bad options); the client-side message descriptor matches room.proto.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RoomMessages, type Room } from '../src/client-node/index.js';
import { R } from '../src/rooms/messages.js';
import type { AgentProc } from './helpers/gateway.js';
import { GW } from './helpers/gw-proto.js';
import { waitFor, type Proc } from './helpers/proc.js';
import { expectCode, roomClient, startRoomCluster, whenLinked } from './helpers/rooms.js';

test('the client descriptor of room.proto encodes like the .proto', () => {
  const sample = { service: 'rooms', method: 'join_or_create', room_type: 'match', room_id: '1.2.3~x', options: '{"a":1}', token: 't' };
  assert.deepEqual(Buffer.from(RoomMessages.JoinRoom.encode(sample)), Buffer.from(R.JoinRoom.encode(sample)));
  const joined = { room_id: 'r', room_type: 'match', host: 'rooms#0@dev', seat: 's', reconnect_token: 'k', reconnect_sec: 7 };
  assert.deepEqual(Buffer.from(RoomMessages.RoomJoined.encode(joined)), Buffer.from(R.RoomJoined.encode(joined)));
  for (const k of ['JoinRoom', 'RoomJoined', 'LeaveRoom', 'RoomLeft', 'RoomReady'] as const) assert.equal(RoomMessages[k].id, R[k].id, k);
});

test('100 concurrent joinOrCreate over two agents and two backends: every client seated, no room overfull, rooms packed', { timeout: 60_000 }, async (t) => {
  const { agents, backends } = await startRoomCluster(t);
  const clients = Array.from({ length: 100 }, (_, i) => roomClient(t, agents[i % 2] as AgentProc, { ws: i % 3 === 0 }));
  await Promise.all(clients.map((x) => x.c.connect()));
  await whenLinked([clients[0]!.c, clients[1]!.c]);
  // Both backends must be seen by both agents before the burst, or one matchmaker's hash sees one instance only.
  await sleep(500);

  const rooms: Room[] = await Promise.all(clients.map((x) => x.c.joinOrCreate('match', { mode: 'duel' }, { service: 'rooms' })));
  const byRoom = new Map<string, number>();
  for (const r of rooms) byRoom.set(r.id, (byRoom.get(r.id) ?? 0) + 1);
  for (const [id, n] of byRoom) assert.ok(n <= 8, `room ${id} has ${n} members`);
  assert.equal(new Set(rooms.map((r) => `${r.id}/${r.seat}`)).size, 100, 'one seat each');
  assert.ok(byRoom.size <= 16, `100 clients in ${byRoom.size} rooms of 8: expected them packed (13 at best)`);
  // The hosts never counted past 8 either (size includes seats being joined).
  const sizes = backends.flatMap((b) => [...b.stdout.matchAll(/^joined \S+ \S+ size=(\d+)$/gm)].map((m) => Number(m[1])));
  assert.equal(sizes.length, 100);
  assert.ok(Math.max(...sizes) <= 8, `a host counted ${Math.max(...sizes)} seats`);
  // Every room is hosted by one of the two backends; both host some with this many rooms.
  assert.equal(new Set(rooms.map((r) => r.host)).size, 2, 'rooms placed on both backends');

  // A room's broadcast reaches its members (on both agents) and no one else; onJoin's welcome came first.
  const firstId = [...byRoom.keys()][0] as string;
  const members = clients.filter((_, i) => rooms[i]!.id === firstId);
  const others = clients.filter((_, i) => rooms[i]!.id !== firstId);
  const inRoom = rooms.find((r) => r.id === firstId) as Room;
  const sender = members[0] as (typeof members)[number];
  assert.equal(sender.c.send(GW.PushReq, { text: 'hi room' }), true);
  await waitFor(() => members.every((m) => m.notices.includes('hi room')), 5000, 'the room got its broadcast');
  for (const m of members) assert.match(m.notices[0] ?? '', /^welcome /, 'the welcome sent in onJoin arrives first');
  await sleep(200);
  assert.ok(others.every((o) => !o.notices.includes('hi room')), 'members of other rooms got nothing');

  // Leave: the member is told, the room shrinks, and the last leave disposes the room.
  const leaveInfo = new Promise((resolve) => inRoom.onLeave(resolve));
  await inRoom.leave();
  assert.deepEqual(await leaveInfo, { code: 'left', reason: 'left the room' });
  for (const [i, m] of members.entries()) {
    if (m === sender) continue;
    const r = rooms[clients.indexOf(m)] as Room;
    if (i % 2 === 0) await r.leave();
    else m.c.close();
  }
  const host = backends.find((b) => b.stdout.includes(`joined ${firstId} `)) as Proc;
  await host.waitForStdout(new RegExp(`disposed ${firstId.replace(/[.~]/g, '\\$&')}\\n`), 8000);
  const reasons = [...host.stdout.matchAll(new RegExp(`^left ${firstId.replace(/[.~]/g, '\\$&')} \\S+ (\\w+)$`, 'gm'))].map((m) => m[1]);
  assert.equal(reasons.length, members.length);
  assert.ok(reasons.includes('left') && reasons.includes('closed'), `reasons ${reasons.join(',')}`);
});

test('typed join errors: unknown room type, onJoin refusing, a full room by id, a bad room id, bad options', { timeout: 40_000 }, async (t) => {
  const { agents } = await startRoomCluster(t, { backends: 1, agents: 1, backendArgs: [['--max-clients', '1']] });
  const a = roomClient(t, agents[0] as AgentProc);
  const b = roomClient(t, agents[0] as AgentProc);
  await Promise.all([a.c.connect(), b.c.connect()]);
  await whenLinked([a.c]);
  await expectCode(a.c.joinOrCreate('nosuch'), 'unknown_room_type');
  await expectCode(a.c.joinOrCreate('picky', { deny: true }), 'join_refused', /denied by onJoin/);
  const room = await a.c.create('match');
  await expectCode(b.c.joinById(room.id), 'room_full');
  await expectCode(b.c.joinById('not-a-room'), 'room_not_found');
  await expectCode(b.c.joinOrCreate('match', {}, { service: 'unrouted' }), 'bad_request', /not routed|no room service/);
  // A second joinOrCreate of a one-seat type makes another room.
  const other = await b.c.joinOrCreate('match');
  assert.notEqual(other.id, room.id);

  // Hostile JoinRooms, sent raw: each gets a typed Error, and the client and the services stay up.
  const raw = (fields: Partial<{ service: string; method: string; room_type: string; room_id: string; options: string; token: string }>) =>
    a.c.request(RoomMessages.JoinRoom, RoomMessages.RoomJoined, { service: 'rooms', method: 'join_or_create', room_type: 'match', ...fields });
  await expectCode(raw({ options: '{not json' }), 'bad_request', /not JSON/);
  await expectCode(raw({ options: '[1,2]' }), 'bad_request', /JSON object/);
  await expectCode(raw({ options: JSON.stringify({ pad: 'x'.repeat(5000) }) }), 'bad_request', /over 4096 bytes/);
  await expectCode(raw({ method: 'steal' }), 'bad_request', /unknown join method/);
  await expectCode(raw({ room_type: '', room_id: '' }), 'bad_request', /needs a room_type or a room_id/);
  await expectCode(raw({ method: 'reconnect', room_id: room.id, token: 'forged' }), 'reconnect_expired');
  await expectCode(raw({ method: 'join_by_id', room_id: '9.9.9~nope' }), 'unavailable');
  await expectCode(a.c.request(RoomMessages.LeaveRoom, RoomMessages.RoomLeft, { service: 'rooms', room_id: 'someone-elses' }), 'room_not_found');
  // Still seated and served.
  assert.equal(room.left, false);
  assert.equal((await a.c.request(GW.EchoReq, GW.EchoResp, { text: 'still here' })).text, 'still here');
});
