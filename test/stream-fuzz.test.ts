/**
 * Hostile stream frames from an authenticated raw peer (the handshake done
 * by hand) against a service that accepts streams, with small limits so the
 * fuzzer can reach them: each forged frame named in the issue (unknown id,
 * window overflow, data after end or reset, duplicate and mis-numbered opens,
 * oversized meta, over the cap, over the link's window, accepts that answer
 * nothing) resets exactly its stream or closes the link; and fast-check
 * throws random frame sequences at it. Throughout, a good peer runs RPC and
 * a stream to the same service, and not one of its calls or bytes may fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { L, S } from '../src/service/messages.js';
import type { ServiceNode } from '../src/service/node.js';
import type { MeshStream } from '../src/service/stream/index.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, serveEcho, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';
import { RawLink, type Frame } from './helpers/raw-link.js';
import { expectStreamError, hubOf, opened, readAll } from './helpers/streams.js';

const WINDOW = 16 * 1024;
const LINK_WINDOW = 64 * 1024;
const MAX_STREAMS = 8;

interface Mesh {
  defer: Defer;
  target: ServiceNode;
  port: number;
  /** Streams the target accepted, by opener id and stream id. */
  accepted: Map<string, MeshStream>;
  /** Stops the good peer's traffic and checks it was served throughout. */
  finish(): Promise<void>;
}

async function startMesh(t: Parameters<typeof cleanupStack>[0]): Promise<Mesh> {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const accepted = new Map<string, MeshStream>();
  const target = await startNode(defer, addr, { name: 'echo', streams: { window: WINDOW, linkWindow: LINK_WINDOW, maxStreamsPerLink: MAX_STREAMS } }, (n) => {
    serveEcho(n);
    n.onStream((s, info) => {
      accepted.set(`${info.peer.id}/${info.id}`, s);
      if (info.meta['mode'] === 'hold') s.pause();
      else s.pipe(s);
    });
  });
  const good = await startNode(defer, addr, { name: 'good', dependencies: ['echo'], streams: { window: WINDOW } });
  await within(good.whenReady(), 5000, 'the good peer linked');
  const failures: string[] = [];
  let running = true;
  // Registered last, so it runs first: a failed test must not leave the loops running.
  defer(() => (running = false));
  let calls = 0;
  let bytes = 0;
  const rpcLoop = (async () => {
    let n = 0;
    while (running) {
      try {
        const res = await good.call('echo', EchoReq, EchoResp, { text: `bg-${n}`, n }, { timeoutMs: 3000 });
        if (res.n !== n) failures.push(`wrong answer ${JSON.stringify(res)}`);
        calls++;
      } catch (err) {
        failures.push(`call: ${(err as Error).message}`);
      }
      n++;
      await sleep(2);
    }
  })();
  const streamLoop = (async () => {
    while (running) {
      try {
        const data = randomBytes(200_000);
        const s = good.openStream('echo');
        const back = readAll(s);
        s.end(data);
        const got = await within(back, 10_000, 'the good stream echo');
        if (!got.equals(data)) failures.push(`the good stream got ${got.length} wrong bytes`);
        bytes += got.length;
      } catch (err) {
        failures.push(`stream: ${(err as Error).message}`);
        await sleep(10);
      }
    }
  })();
  const downs: string[] = [];
  good.on('peerDown', (p, reason) => downs.push(`${p.id}: ${reason}`));
  return {
    defer,
    target,
    port: target.address.port,
    accepted,
    async finish() {
      running = false;
      await Promise.all([rpcLoop, streamLoop]);
      assert.deepEqual(failures, [], 'the good peer was served throughout');
      assert.deepEqual(downs, [], "the good peer's link never dropped");
      assert.ok(calls > 10 && bytes > 0, `the good peer did work meanwhile (${calls} calls, ${bytes} stream bytes)`);
    },
  };
}

let nextFuzzId = 0;

/** A raw authenticated peer; its stream ids are odd (it dialed). */
async function rawPeer(mesh: Mesh): Promise<{ c: RawLink; id: string }> {
  const c = await RawLink.open(mesh.defer, mesh.port);
  const id = `fuzz#${nextFuzzId++}@dev`;
  await c.handshake(id);
  return { c, id };
}

const isReset = (seq: number) => (f: Frame) => f.msgId === S.StreamReset.id && f.seq === seq;
const isAccept = (seq: number) => (f: Frame) => f.msgId === S.StreamAccept.id && f.seq === seq;

async function expectReset(c: RawLink, seq: number, code: string, message?: RegExp): Promise<void> {
  const f = await c.next(isReset(seq));
  assert.ok(f, `a StreamReset for stream ${seq} (the link closed instead)`);
  const r = S.StreamReset.decode(f.body);
  assert.equal(r.code, code, `reset code for stream ${seq}: ${r.message}`);
  if (message) assert.match(r.message, message);
  c.frames.splice(c.frames.indexOf(f), 1);
}

async function openRaw(c: RawLink, seq: number, meta: Record<string, string> = {}): Promise<number> {
  c.send(S.StreamOpen.id, seq, S.StreamOpen.encode({ window: 1 << 20, meta }));
  const f = await c.next(isAccept(seq));
  assert.ok(f, `stream ${seq} accepted`);
  return S.StreamAccept.decode(f.body).window;
}

/** The link still works: an RPC on it is answered. */
async function linkAlive(c: RawLink, n: number): Promise<void> {
  const seq = 1_000_000 + n;
  c.send(EchoReq.id, seq, EchoReq.encode({ text: 'alive?', n }));
  const f = await c.next((x) => x.seq === (seq | 0x80000000) >>> 0);
  assert.ok(f && f.msgId === EchoResp.id, 'an RPC on the same link is still answered');
}

test('forged stream frames reset their stream, or close the link when no stream can answer for them', async (t) => {
  const mesh = await startMesh(t);
  const { c, id } = await rawPeer(mesh);

  // A valid open: the link's window arrives first, then the accept with the stream's window.
  assert.equal(await openRaw(c, 1, { mode: 'hold' }), WINDOW);
  const grant = c.frames.find((f) => f.msgId === S.StreamWindow.id && f.seq === 0);
  assert.ok(grant && S.StreamWindow.decode(grant.body).delta === LINK_WINDOW, "the link's window is granted before the first accept");
  assert.ok(c.frames.indexOf(grant) < c.frames.findIndex(isAccept(1)));

  // Data beyond the stream's window.
  c.send(S.StreamData.id, 1, Buffer.alloc(WINDOW + 1));
  await expectReset(c, 1, 'bad_request', /beyond|credit/);
  await expectStreamError(mesh.accepted.get(`${id}/1`) as MeshStream, 'bad_request');

  // Data for a stream that was never opened, and data after that stream was reset.
  c.send(S.StreamData.id, 101, Buffer.from('who?'));
  await expectReset(c, 101, 'cancelled', /not open/);
  c.send(S.StreamData.id, 1, Buffer.from('after the reset'));
  await expectReset(c, 1, 'cancelled', /not open/);
  c.send(S.StreamEnd.id, 103);
  await expectReset(c, 103, 'cancelled', /not open/);
  c.send(S.StreamAccept.id, 105, S.StreamAccept.encode({ window: 10 }));
  await expectReset(c, 105, 'cancelled', /not open/);
  // A grant or a reset for an unknown stream is not answered (either may cross a close).
  c.send(S.StreamWindow.id, 107, S.StreamWindow.encode({ delta: 10 }));
  c.send(S.StreamReset.id, 109, S.StreamReset.encode({ code: 'cancelled', message: 'x' }));

  // Data after StreamEnd.
  await openRaw(c, 3, { mode: 'hold' });
  c.send(S.StreamEnd.id, 3);
  c.send(S.StreamData.id, 3, Buffer.from('late'));
  await expectReset(c, 3, 'bad_request', /after StreamEnd/);

  // The same id opened twice: the open stream is reset.
  await openRaw(c, 5, { mode: 'hold' });
  c.send(S.StreamOpen.id, 5, S.StreamOpen.encode({ window: 100 }));
  await expectReset(c, 5, 'bad_request', /stream 5 opened again/);

  // An id of the parity the target opens; an undecodable open; too much meta.
  c.send(S.StreamOpen.id, 8, S.StreamOpen.encode({ window: 100 }));
  await expectReset(c, 8, 'bad_request', /parity/);
  c.send(S.StreamOpen.id, 9, Buffer.from([0xff, 0xff, 0xff]));
  await expectReset(c, 9, 'bad_request', /undecodable/);
  c.send(S.StreamOpen.id, 11, S.StreamOpen.encode({ window: 100, meta: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }));
  await expectReset(c, 11, 'bad_request', /meta/);

  // A window update that takes the credit past 2^31 - 1.
  await openRaw(c, 13, { mode: 'hold' });
  c.send(S.StreamWindow.id, 13, S.StreamWindow.encode({ delta: 0x7fffffff }));
  await expectReset(c, 13, 'bad_request', /window update/);

  // Over the cap of streams per link.
  for (let i = 0; i < MAX_STREAMS; i++) await openRaw(c, 201 + 2 * i, { mode: 'hold' });
  c.send(S.StreamOpen.id, 301, S.StreamOpen.encode({ window: 100 }));
  await expectReset(c, 301, 'busy', /streams open/);
  await linkAlive(c, 1);
  assert.equal(c.isClosed, false, 'none of that closed the link');
  await mesh.finish();
});

test('frames that no stream can answer for close the link: no stream id, link window overflow, data past the link window', async (t) => {
  const mesh = await startMesh(t);
  // Stream data with seq 0.
  let { c } = await rawPeer(mesh);
  await openRaw(c, 1);
  c.send(S.StreamData.id, 0, Buffer.from('no stream'));
  await c.expectClosed('stream data without an id');
  // The link window taken past 2^31 - 1.
  ({ c } = await rawPeer(mesh));
  c.send(S.StreamWindow.id, 0, S.StreamWindow.encode({ delta: 0x7fffffff }));
  c.send(S.StreamWindow.id, 0, S.StreamWindow.encode({ delta: 1 }));
  await c.expectClosed('link window overflow');
  // Data before the target granted this link any window.
  ({ c } = await rawPeer(mesh));
  c.send(S.StreamData.id, 1, Buffer.from('too early'));
  await c.expectClosed('data before any window');
  // Each stream within its window, all of them together past the link's.
  const held = await rawPeer(mesh);
  c = held.c;
  for (let i = 0; i < LINK_WINDOW / WINDOW + 1; i++) {
    await openRaw(c, 1 + 2 * i, { mode: 'hold' });
    c.send(S.StreamData.id, 1 + 2 * i, Buffer.alloc(WINDOW));
  }
  await c.expectClosed("data past the link's window");
  await waitFor(() => !hubOf(mesh.target).stats().some((s) => s.peer === held.id), 2000, 'the closed link forgotten');
  for (const [key, s] of mesh.accepted) if (key.startsWith(`${held.id}/`)) await expectStreamError(s, 'unavailable');
  await mesh.finish();
});

test('a peer that mishandles the streams the service opens: no accept (timeout), a second accept (reset)', async (t) => {
  const mesh = await startMesh(t);
  const { c, id } = await rawPeer(mesh);
  await waitFor(() => mesh.target.isConnected(id), 2000, 'the target knows the raw peer');
  const silent = mesh.target.openStream({ id }, { timeoutMs: 300 });
  const open = await c.next((f) => f.msgId === S.StreamOpen.id);
  assert.ok(open);
  assert.equal(open.seq % 2, 0, 'the acceptor of the link opens even ids');
  assert.equal(S.StreamOpen.decode(open.body).window, WINDOW);
  await expectStreamError(silent, 'timeout', /not accepted within/);
  await expectReset(c, open.seq, 'timeout');

  const twice = mesh.target.openStream({ id });
  const open2 = await c.next((f) => f.msgId === S.StreamOpen.id && f.seq !== open.seq);
  assert.ok(open2);
  c.send(S.StreamAccept.id, open2.seq, S.StreamAccept.encode({ window: 1000 }));
  await opened(twice);
  c.send(S.StreamAccept.id, open2.seq, S.StreamAccept.encode({ window: 1000 }));
  await expectStreamError(twice, 'bad_request', /not opening/);
  await expectReset(c, open2.seq, 'bad_request');
  await linkAlive(c, 2);
  await mesh.finish();
});

// ---- fast-check ---------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const seqArb = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 6, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 1, arbitrary: u32 });
const garbage = fc.uint8Array({ maxLength: 40 });
const frameArb = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(seqArb, fc.oneof(u32, fc.integer({ min: 0, max: 1 << 20 })), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 300 }), { maxKeys: 70 })).map(([seq, window, meta]) => ({ msgId: S.StreamOpen.id, seq, body: S.StreamOpen.encode({ window, meta }) })) },
  { weight: 4, arbitrary: fc.tuple(seqArb, fc.integer({ min: 0, max: 20_000 })).map(([seq, n]) => ({ msgId: S.StreamData.id, seq, body: randomBytes(n) })) },
  { weight: 2, arbitrary: fc.tuple(seqArb, u32).map(([seq, delta]) => ({ msgId: S.StreamWindow.id, seq, body: S.StreamWindow.encode({ delta }) })) },
  { weight: 1, arbitrary: fc.tuple(seqArb, u32).map(([seq, window]) => ({ msgId: S.StreamAccept.id, seq, body: S.StreamAccept.encode({ window }) })) },
  { weight: 2, arbitrary: seqArb.map((seq) => ({ msgId: S.StreamEnd.id, seq, body: new Uint8Array(0) })) },
  { weight: 1, arbitrary: fc.tuple(seqArb, fc.string({ maxLength: 20 }), fc.string({ maxLength: 50 })).map(([seq, code, message]) => ({ msgId: S.StreamReset.id, seq, body: S.StreamReset.encode({ code, message }) })) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: S.StreamOpen.id, max: S.StreamReset.id }), seqArb, garbage).map(([msgId, seq, body]) => ({ msgId, seq, body })) },
);

test('fast-check: random stream frame sequences never crash the service or disturb another peer; memory stays within the windows', async (t) => {
  const mesh = await startMesh(t);
  let closedLinks = 0;
  let resets = 0;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 40 }), async (frames) => {
      const { c, id } = await rawPeer(mesh);
      try {
        for (const f of frames) c.send(f.msgId, f.seq, f.body);
        // Whatever happened, the link is either closed by the target or still answers.
        if (!c.isClosed) {
          try {
            await linkAlive(c, run++);
          } catch (err) {
            assert.ok(c.isClosed, `the link neither answered nor closed: ${(err as Error).message}`);
          }
        }
        for (const s of hubOf(mesh.target).stats()) assert.ok(s.buffered <= LINK_WINDOW && s.streams <= MAX_STREAMS, `link to ${s.peer}: ${s.streams} streams, ${s.buffered} bytes`);
        resets += c.frames.filter((f) => f.msgId === S.StreamReset.id).length;
        if (c.isClosed) closedLinks++;
        assert.equal(c.frames.filter((f) => f.msgId === L.RpcError.id && f.seq === 0).length, 0, 'no link-level refusal after a good handshake');
      } finally {
        c.destroy();
        await c.closed;
        await waitFor(() => !hubOf(mesh.target).stats().some((s) => s.peer === id), 2000, 'the raw link forgotten');
      }
    }),
    { numRuns: 250, interruptAfterTimeLimit: 20_000 },
  );
  assert.ok(resets > 0 && closedLinks > 0, `the fuzzer reached both outcomes (${resets} resets, ${closedLinks} closed links)`);
  await mesh.finish();
});

test('what the target sends a raw peer that never grants it link credit stays queued within the windows', async (t) => {
  const mesh = await startMesh(t);
  const { c } = await rawPeer(mesh);
  // The target echoes, but the raw peer never grants a link window: nothing can come back.
  await openRaw(c, 1);
  const sent = randomBytes(WINDOW);
  c.send(S.StreamData.id, 1, sent);
  await sleep(200);
  assert.equal(c.frames.filter((f) => f.msgId === S.StreamData.id).length, 0, 'no stream data without link credit');
  // Granting the link window (the stream's came with the open) releases the echo, intact.
  c.send(S.StreamWindow.id, 0, S.StreamWindow.encode({ delta: 1 << 20 }));
  const echoed = () => Buffer.concat(c.frames.filter((f) => f.msgId === S.StreamData.id && f.seq === 1).map((f) => f.body));
  await waitFor(() => echoed().length === WINDOW, 3000, 'the echo after the grant');
  assert.ok(echoed().equals(sent));
  await mesh.finish();
});
