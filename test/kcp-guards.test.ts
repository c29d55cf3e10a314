/**
 * What the KCP listener refuses, on real UDP sockets: no reply to an
 * unproven address is bigger than what it sent (and a short Hello gets
 * none); a Connect with a forged cookie, another address's cookie, another
 * nonce or an expired cookie creates nothing; a resent Connect gets the
 * same conv; segments with an unknown conv or from the wrong address are
 * dropped and counted while the session goes on; oversized datagrams are
 * dropped; the session cap answers Close (full); silent sessions are closed;
 * a peer that stops acknowledging is cut off at the outbound cap; a
 * graceful close delivers what was sent before it. Then the same attacks
 * with forged IPv4 source addresses (a raw socket) against a whole agent:
 * they create no session and reflect nothing bigger than they sent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../src/gateway/agent.js';
import { CHALLENGE_BYTES, CloseCode, ControlType, encodeControl, HELLO_BYTES, ModeByte } from '../src/net/kcp/control.js';
import { dialKcp } from '../src/net/kcp/dial.js';
import { listenKcp, type KcpListener, type KcpListenOptions } from '../src/net/kcp/listener.js';
import type { KcpSession } from '../src/net/kcp/session.js';
import { CMD_PUSH, KCP_OVERHEAD } from '../src/net/kcp/segment.js';
import type { Session } from '../src/net/session.js';
import { ROUTES, startGatewayMesh } from './helpers/gateway.js';
import { buildSpoofer, UdpPeer } from './helpers/kcp.js';
import { cleanupStack, silent } from './helpers/mesh.js';
import { waitFor, type Cleanup } from './helpers/proc.js';

const QUIET = { idleTimeoutMs: 0, heartbeatMs: 0 };

async function listen(t: Cleanup, options: KcpListenOptions = {}, onSession: (s: KcpSession) => void = echo): Promise<KcpListener> {
  const l = await listenKcp({ ...QUIET, ...options }, onSession);
  t.after(() => l.close());
  return l;
}

/** Echoes every frame with msgId + 1. */
function echo(s: Session): void {
  s.on('frame', (msgId, seq, body) => s.send(msgId + 1, seq, body));
}

async function roundTrip(s: Session, text: string): Promise<string> {
  const got = new Promise<string>((resolve) => s.once('frame', (_m, _s, body) => resolve(body.toString())));
  s.send(1000, 7, Buffer.from(text));
  return got;
}

/** A datagram of one PUSH segment with the given conv, as a forger would write it. */
function pushSegment(conv: number, sn = 0): Buffer {
  const data = Buffer.from('forged');
  const b = Buffer.alloc(KCP_OVERHEAD + data.length);
  b.writeUInt32LE(conv, 0);
  b[4] = CMD_PUSH;
  b.writeUInt16LE(128, 6);
  b.writeUInt32LE(sn, 12);
  b.writeUInt32LE(data.length, 20);
  data.copy(b, KCP_OVERHEAD);
  return b;
}

test('Hello: a short one gets no answer, a full one exactly one Challenge of its size', async (t) => {
  const l = await listen(t);
  const peer = await UdpPeer.open(t);
  const hello = encodeControl({ type: ControlType.Hello, nonce: 42 });
  assert.equal(hello.length, HELLO_BYTES);
  await peer.send(hello.subarray(0, CHALLENGE_BYTES - 1), l.port);
  await peer.send(hello, l.port);
  const challenge = await peer.take(ControlType.Challenge);
  assert.equal(challenge.nonce, 42);
  await waitFor(() => l.stats.datagrams === 2, 2000, 'both datagrams seen');
  await sleep(100);
  assert.equal(peer.inbox.length, 0, 'nothing but the one Challenge came back');
  assert.equal(l.stats.challenges, 1);
  assert.equal(l.stats.malformed, 1, 'the short Hello is counted');
  assert.equal(l.sessions.size, 0, 'a Hello creates nothing');
});

test('Connect: forged cookie, cookie of another address, other nonce, expired cookie: no session', async (t) => {
  const l = await listen(t, { cookieTtlSec: 1 });
  const alice = await UdpPeer.open(t);
  const mallory = await UdpPeer.open(t);
  await alice.send(encodeControl({ type: ControlType.Hello, nonce: 7 }), l.port);
  const c = await alice.take(ControlType.Challenge);
  const connect = (nonce: number, cookie: Buffer, timestamp = c.timestamp) => encodeControl({ type: ControlType.Connect, nonce, timestamp, cookie, mode: ModeByte.Turbo });

  await mallory.send(connect(7, Buffer.alloc(16, 0xab)), l.port);
  await mallory.send(connect(7, c.cookie), l.port); // alice's cookie from mallory's address
  await alice.send(connect(8, c.cookie), l.port); // alice's cookie with another nonce
  await alice.send(connect(7, c.cookie, c.timestamp + 1), l.port); // another timestamp
  await waitFor(() => l.stats.badCookies === 4, 2000, 'four bad cookies counted');
  // A genuine cookie, but too old: the listener only takes cookies up to cookieTtlSec.
  await waitFor(() => Math.floor(performance.now() / 1000) - c.timestamp > 1, 3000, 'the cookie to age');
  await alice.send(connect(7, c.cookie), l.port);
  await waitFor(() => l.stats.staleCookies === 1, 2000, 'the stale cookie counted');
  await sleep(100);
  assert.equal(l.sessions.size, 0);
  assert.equal(l.stats.accepted, 0);
  assert.equal(alice.inbox.length + mallory.inbox.length, 0, 'no answer to any of them');
});

test('a resent Connect (its Accept lost) gets the same conv and makes one session', async (t) => {
  const l = await listen(t);
  const peer = await UdpPeer.open(t);
  const { conv, cookie } = await peer.handshake(l.port, ModeByte.Normal, 99);
  await peer.send(encodeControl({ type: ControlType.Connect, nonce: 99, timestamp: cookie.timestamp, cookie: cookie.cookie, mode: ModeByte.Normal }), l.port);
  const again = await peer.take(ControlType.Accept);
  assert.equal(again.conv, conv);
  assert.equal(again.mode, ModeByte.Normal);
  assert.equal(l.sessions.size, 1);
  assert.equal(l.stats.accepted, 1);
});

test('unknown conv, wrong address, and Close from the wrong address are dropped and counted; the session goes on', async (t) => {
  const sessions: KcpSession[] = [];
  const l = await listen(t, {}, (s) => {
    sessions.push(s);
    echo(s);
  });
  const client = await dialKcp('127.0.0.1', l.port, QUIET);
  t.after(() => client.close('test over'));
  assert.equal(await roundTrip(client, 'before'), 'before');
  const mallory = await UdpPeer.open(t);
  await mallory.send(pushSegment(client.conv), l.port);
  await mallory.send(encodeControl({ type: ControlType.Close, conv: client.conv, code: CloseCode.Closed }), l.port);
  await mallory.send(pushSegment((client.conv ^ 0x5a5a5a5a) >>> 0 || 1), l.port);
  await waitFor(() => l.stats.wrongAddress === 2 && l.stats.unknownConv === 1, 2000, 'the forgeries counted');
  assert.equal(await roundTrip(client, 'after'), 'after');
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0]?.closed, false);
  assert.equal(mallory.inbox.length, 0, 'nothing is sent to the forger');
});

test('datagrams over the MTU are dropped before they are parsed', async (t) => {
  const l = await listen(t, { mtu: 1200 });
  const peer = await UdpPeer.open(t);
  await peer.send(Buffer.alloc(1201), l.port);
  await peer.send(Buffer.concat([encodeControl({ type: ControlType.Hello, nonce: 1 }), Buffer.alloc(1200)]), l.port);
  await waitFor(() => l.stats.oversized === 2, 2000, 'two oversized datagrams');
  assert.equal(l.stats.challenges, 0);
});

test('over maxConnections, Connect gets Close (full) and no session', async (t) => {
  const l = await listen(t, { maxConnections: 1 });
  const first = await dialKcp('127.0.0.1', l.port, QUIET);
  t.after(() => first.close('test over'));
  await assert.rejects(dialKcp('127.0.0.1', l.port, { ...QUIET, connectTimeoutMs: 3000 }), /refused the KCP session: the agent is full/);
  assert.equal(l.sessions.size, 1);
  assert.equal(l.stats.refused, 1);
});

test('a silent session is closed, and its peer is told', async (t) => {
  const closed: string[] = [];
  const l = await listen(t, { idleTimeoutMs: 300, heartbeatMs: 0 }, (s) => s.once('close', (reason) => closed.push(reason)));
  const client = await dialKcp('127.0.0.1', l.port, QUIET);
  const clientClosed = new Promise<string>((resolve) => client.once('close', (reason) => resolve(reason)));
  await waitFor(() => closed.length === 1, 3000, 'the idle session to close');
  assert.match(closed[0] as string, /idle for over 300 ms/);
  assert.equal(await clientClosed, 'connection closed by peer');
  await waitFor(() => l.sessions.size === 0, 3000, 'the session released');
});

test('a peer that stops acknowledging is cut off at the outbound cap, and its memory goes', async (t) => {
  let server: KcpSession | undefined;
  const l = await listen(t, { maxOutbound: 256 * 1024 }, (s) => (server = s));
  const peer = await UdpPeer.open(t);
  await peer.handshake(l.port);
  await waitFor(() => server !== undefined, 2000, 'the session');
  const s = server as KcpSession;
  const reason = new Promise<string>((resolve) => s.once('close', (r) => resolve(r)));
  const chunk = Buffer.alloc(16 * 1024, 1);
  for (let i = 0; i < 100 && !s.closed; i++) s.send(1000, 0, chunk);
  assert.match(await reason, /outbound queue over 262144 bytes/);
  await waitFor(() => l.sessions.size === 0, 5000, 'the session released after its drain deadline');
});

test('a graceful close delivers what was sent before it', async (t) => {
  const big = Buffer.alloc(60_000, 0x42);
  const l = await listen(t, {}, (s) =>
    s.once('frame', () => {
      s.send(2000, 1, big);
      s.close('done');
    }),
  );
  const client = await dialKcp('127.0.0.1', l.port, QUIET);
  const frame = new Promise<Buffer>((resolve) => client.once('frame', (_m, _s, body) => resolve(Buffer.from(body))));
  const closed = new Promise<string>((resolve) => client.once('close', (r) => resolve(r)));
  client.send(1000, 1, Buffer.from('go'));
  assert.deepEqual(await frame, big);
  assert.equal(await closed, 'connection closed by peer');
});

test('forged source addresses (raw socket) against an agent: no session, nothing reflected beyond 1:1', async (t) => {
  const defer = cleanupStack(t);
  const spoofer = await buildSpoofer(t);
  if (typeof spoofer === 'string') {
    if (process.env['CI']) assert.fail(spoofer);
    t.skip(spoofer);
    return;
  }
  const mesh = await startGatewayMesh(defer);
  // Index 1: the mesh's own agent is agent#0@dev.
  const agent = await new Agent({ node: { config: { sdaddr: mesh.sdaddr, svcindex: 1 }, logger: silent, shutdownTimeoutMs: 500 }, routes: ROUTES, tcpPort: null, wsPort: null, kcpPort: 0 }).start();
  defer(() => agent.stop());
  const port = Number((agent.kcpAddress ?? '').split(':')[1]);
  const stats = agent.kcpStats ?? assert.fail('no KCP stats');

  // The victim: an address the attacker claims. What it receives is what the agent reflects.
  const victim = await UdpPeer.open(t, '127.0.0.66');
  const hello = encodeControl({ type: ControlType.Hello, nonce: 1 });
  await spoofer.send('127.0.0.66', victim.port, port, hello, 50);
  await spoofer.send('127.0.0.66', victim.port, port, hello.subarray(0, 20), 50);
  await waitFor(() => stats.datagrams >= 100, 3000, 'the forged Hellos to arrive');
  await waitFor(() => victim.inbox.length === 50, 3000, 'the challenges to reach the victim');
  assert.ok(victim.inbox.every((d) => d.data.length === CHALLENGE_BYTES && d.data.length <= hello.length), 'each reply is no bigger than its Hello');
  assert.equal(stats.challenges, 50, 'a short Hello gets nothing back at all');

  // A cookie the attacker got for its own address does not work from the victim's.
  const attacker = await UdpPeer.open(t);
  await attacker.send(encodeControl({ type: ControlType.Hello, nonce: 5 }), port);
  const own = await attacker.take(ControlType.Challenge);
  const forgedConnects = [
    encodeControl({ type: ControlType.Connect, nonce: 5, timestamp: own.timestamp, cookie: own.cookie, mode: ModeByte.Turbo }),
    encodeControl({ type: ControlType.Connect, nonce: 1, timestamp: own.timestamp, cookie: Buffer.alloc(16, 7), mode: ModeByte.Turbo }),
  ];
  for (const c of forgedConnects) await spoofer.send('127.0.0.66', victim.port, port, c, 20);
  await waitFor(() => stats.badCookies === 40, 3000, 'the forged Connects counted');

  // Segments for a live session, forged from another address, are dropped; the session is fine.
  const client = await dialKcp('127.0.0.1', port, QUIET);
  defer(() => client.close('test over'));
  await spoofer.send('127.0.0.66', victim.port, port, pushSegment(client.conv), 20);
  await waitFor(() => stats.wrongAddress === 20, 3000, 'the forged segments counted');
  await sleep(200);

  assert.equal(stats.accepted, 1, 'only the genuine client got a session');
  assert.equal(agent.online, 1);
  assert.equal(victim.inbox.length, 50, 'the victim got the 50 challenges and nothing else');
});
