/**
 * Random datagrams against KCP (fast-check). The engine, given any bytes, or
 * well-formed segments with hostile fields (any cmd, frg, wnd, ts, sn, una),
 * never throws and keeps every buffer within its window. The listener, on a
 * real UDP socket with one live session, takes tens of thousands of random
 * datagrams (random bytes, control packets, segments with the live conv
 * from the right and the wrong address) without crashing or allocating
 * sessions, its heap stays bounded, and the genuine client still works.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { ControlType, encodeControl } from '../src/net/kcp/control.js';
import { dialKcp } from '../src/net/kcp/dial.js';
import { KcpEngine, KCP_MAX_FRAGMENTS, TURBO_MODE } from '../src/net/kcp/engine.js';
import { listenKcp } from '../src/net/kcp/listener.js';
import { CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS, KCP_OVERHEAD, type Segment } from '../src/net/kcp/segment.js';
import { UdpPeer } from './helpers/kcp.js';
import { waitFor } from './helpers/proc.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CONV = 0xfeedbeef;

const segmentArb: fc.Arbitrary<SegSpec> = fc.record({
  cmd: fc.oneof(fc.constantFrom(CMD_PUSH, CMD_ACK, CMD_WASK, CMD_WINS), fc.integer({ min: 0, max: 255 })),
  frg: fc.integer({ min: 0, max: 255 }),
  wnd: fc.integer({ min: 0, max: 0xffff }),
  ts: fc.nat(),
  sn: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.nat()),
  una: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.nat()),
  data: fc.uint8Array({ maxLength: 200 }),
  lie: fc.integer({ min: -3, max: 3 }),
});

/** A segment as a forger writes it: any field values, data of any length, and a length field that may lie. */
interface SegSpec extends Omit<Segment, 'data'> {
  data: Uint8Array;
  lie: number;
}

function encodeSegments(conv: number, segs: SegSpec[]): Buffer {
  const parts = segs.map((s) => {
    const b = Buffer.alloc(KCP_OVERHEAD + s.data.length);
    b.writeUInt32LE(conv, 0);
    b[4] = s.cmd;
    b[5] = s.frg;
    b.writeUInt16LE(s.wnd, 6);
    b.writeUInt32LE(s.ts >>> 0, 8);
    b.writeUInt32LE(s.sn >>> 0, 12);
    b.writeUInt32LE(s.una >>> 0, 16);
    // Now and then the length field lies about the data.
    b.writeUInt32LE(Math.max(0, s.data.length + (s.lie === 3 ? 1000 : s.lie === -3 ? -1 : 0)) >>> 0, 20);
    Buffer.from(s.data).copy(b, KCP_OVERHEAD);
    return b;
  });
  return Buffer.concat(parts);
}

test('the engine takes any datagram without throwing, and its buffers stay within their windows', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 1400 }).map((u) => Buffer.from(u)), fc.array(segmentArb, { minLength: 1, maxLength: 6 }).map((s) => encodeSegments(CONV, s))), { maxLength: 60 }),
      fc.boolean(),
      (datagrams, read) => {
        let now = 5000;
        const out: Buffer[] = [];
        const e = new KcpEngine(CONV, (d) => out.push(Buffer.from(d)), { mode: TURBO_MODE, clock: () => now });
        for (let i = 0; i < 20; i++) e.send(Buffer.alloc(500, i));
        for (const d of datagrams) {
          e.input(d);
          if (read) while (e.recv() !== undefined);
          now += 7;
          e.update();
          const [, sndBuf, rcvBuf, rcvQueue, acks] = e.sizes;
          assert.ok(rcvBuf <= KCP_MAX_FRAGMENTS && rcvQueue <= KCP_MAX_FRAGMENTS, `receive buffers ${rcvBuf}/${rcvQueue}`);
          assert.ok(acks <= KCP_MAX_FRAGMENTS * 2, `${acks} acks pending`);
          assert.ok(sndBuf <= 128, `${sndBuf} segments in flight`);
        }
        e.flush();
        for (const d of out) assert.ok(d.length <= e.mtu);
      },
    ),
    { numRuns: 300 },
  );
});

test('the listener under random datagrams: no crash, no sessions, bounded heap, and the real client still works', { timeout: 120_000 }, async (t) => {
  let sessions = 0;
  const l = await listenKcp({ idleTimeoutMs: 0, heartbeatMs: 0 }, (s) => {
    sessions++;
    s.on('frame', (msgId, seq, body) => s.send(msgId, seq, body));
  });
  t.after(() => l.close());
  const client = await dialKcp('127.0.0.1', l.port, { idleTimeoutMs: 0, heartbeatMs: 0 });
  t.after(() => client.close('test over'));
  const echo = async (text: string): Promise<string> => {
    const got = new Promise<string>((resolve) => client.once('frame', (_m, _s, b) => resolve(b.toString())));
    client.send(1000, 1, Buffer.from(text));
    return got;
  };
  assert.equal(await echo('hello'), 'hello');

  const peers = await Promise.all(Array.from({ length: 4 }, () => UdpPeer.open(t)));
  // peers[0] owns a session of its own, so hostile segments also come from a session's bound address.
  const owned = await (peers[0] as UdpPeer).handshake(l.port);
  const fromOwner = fc.array(segmentArb, { minLength: 1, maxLength: 4 }).map((s) => ({ owner: true, data: encodeSegments(owned.conv, s) }));
  const anyone = fc.oneof(
    fc.uint8Array({ maxLength: 1500 }).map((u) => Buffer.from(u)),
    fc.array(segmentArb, { minLength: 1, maxLength: 4 }).map((s) => encodeSegments(client.conv, s)),
    fc.array(segmentArb, { minLength: 1, maxLength: 4 }).map((s) => encodeSegments(CONV, s)),
    fc.record({ nonce: fc.nat(), ts: fc.nat(), cookie: fc.uint8Array({ minLength: 16, maxLength: 16 }), mode: fc.integer({ min: 0, max: 255 }), type: fc.integer({ min: 0, max: 8 }) }).map((c) => {
      const b = encodeControl({ type: ControlType.Connect, nonce: c.nonce, timestamp: c.ts, cookie: Buffer.from(c.cookie), mode: c.mode });
      b[7] = c.type;
      return b;
    }),
  ).map((data) => ({ owner: false, data }));
  const datagram = fc.oneof({ arbitrary: anyone, weight: 4 }, { arbitrary: fromOwner, weight: 1 });

  let sent = 0;
  const blast = async (count: number, seed: number): Promise<void> => {
    const samples = fc.sample(datagram, { numRuns: count, seed });
    for (let i = 0; i < samples.length; i++) {
      const d = samples[i] as { owner: boolean; data: Buffer };
      await (peers[d.owner ? 0 : 1 + (i % (peers.length - 1))] as UdpPeer).send(d.data, l.port);
      sent++;
      // In batches, so the kernel never drops for a full receive queue: every datagram reaches the listener.
      if (sent % 100 === 0) await waitFor(() => l.stats.datagrams >= sent, 5000, 'the listener to read the batch');
    }
  };

  await blast(5000, 1);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let round = 2; round <= 6; round++) await blast(5000, round);
  await new Promise((r) => setTimeout(r, 300));
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  assert.ok(l.stats.datagrams >= sent, 'every random datagram reached the listener');
  t.diagnostic(`datagrams seen ${l.stats.datagrams}; heap change over 25,000 random datagrams: ${(grown / 1024).toFixed(0)} KiB; ${JSON.stringify(l.stats)}`);
  assert.ok(grown < 8 * 1024 * 1024, `the heap grew by ${grown} bytes`);
  assert.equal(sessions, 2, 'random bytes never make a session');
  assert.equal(l.stats.accepted, 2);
  assert.ok(l.sessions.size <= 2);
  assert.ok(l.stats.malformed + l.stats.unknownConv + l.stats.wrongAddress + l.stats.badCookies + l.stats.oversized > 10_000, 'the refusals were counted');
  assert.equal(await echo('still here'), 'still here');
});
