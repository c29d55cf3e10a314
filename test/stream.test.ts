/**
 * Streams between service nodes in this process, over real sockets: data
 * integrity (large, many at once, through pipeline), who opened and meta,
 * half-close, reset on both sides, refusals (no handler, cap, not
 * connected, stopping), a reader that stops (its writer stalls, memory stays
 * within the window, other streams and RPC on the link go on), and the link
 * dying under streams in both directions.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TcpListener } from '../src/net/tcp.js';
import { RpcError } from '../src/service/errors.js';
import type { ServiceNode } from '../src/service/node.js';
import type { MeshStream, StreamInfo } from '../src/service/stream/index.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { serveEcho, startNode } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';
import { expectStreamError, hubOf, opened, readAll, startPair, waitForStreams } from './helpers/streams.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Echoes every stream back to its opener. */
const echo = (s: MeshStream) => {
  s.pipe(s);
};

/** Writes `data` in random-sized pieces (honouring backpressure), then ends. */
async function writeInPieces(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + Math.floor(Math.random() * 100_000));
    if (!stream.write(data.subarray(off, off + n))) await once(stream, 'drain');
    off += n;
  }
  stream.end();
}

test('a stream echoes 8 MiB intact; info tells each side who opened it and the meta; ids follow the dialer', async (t) => {
  const infos: StreamInfo[] = [];
  const { game, gate } = await startPair(t, {
    handler: (s, info) => {
      infos.push(info);
      echo(s);
    },
  });
  const data = randomBytes(8 * 1024 * 1024);
  const stream = await opened(gate.openStream('game', { meta: { user: 'ada', room: '7' } }));
  const back = readAll(stream);
  await writeInPieces(stream, data);
  const got = await within(back, 20_000, 'the echo');
  assert.equal(got.length, data.length);
  assert.equal(sha(got), sha(data));
  assert.equal(infos.length, 1);
  const theirs = infos[0] as StreamInfo;
  assert.deepEqual({ ...theirs.meta }, { user: 'ada', room: '7' });
  assert.equal(theirs.peer.id, gate.id);
  assert.equal(theirs.peer.name, 'gate');
  assert.equal(theirs.opener, 'remote');
  const ours = stream.info as StreamInfo;
  assert.equal(ours.peer.id, game.id);
  assert.equal(ours.opener, 'local');
  assert.equal(ours.id, theirs.id);
  assert.equal(ours.id % 2, 1, 'the gate dialed the link, so its stream ids are odd');
  await waitForStreams(gate, 0);
  await waitForStreams(game, 0);
});

test('a writer that reuses its buffer after each write callback sends every version intact (the link does not copy)', async (t) => {
  const { gate } = await startPair(t, { handler: echo });
  const s = await opened(gate.openStream('game'));
  const back = readAll(s);
  const buf = Buffer.alloc(200 * 1024);
  const ROUNDS = 40;
  for (let i = 0; i < ROUNDS; i++) {
    buf.fill(i);
    // The callback says the stream is done with `buf`: refill it at once.
    await new Promise<void>((resolve, reject) => s.write(buf, (err) => (err ? reject(err) : resolve())));
  }
  s.end();
  const got = await within(back, 20_000, 'the echo');
  assert.equal(got.length, ROUNDS * buf.length);
  for (let i = 0; i < ROUNDS; i++) {
    const part = got.subarray(i * buf.length, (i + 1) * buf.length);
    assert.ok(part.every((b) => b === i), `round ${i} arrived as written`);
  }
});

test('200 streams at once on one link, each with its own bytes, all intact, and both sides open streams', async (t) => {
  const { game, gate } = await startPair(t, { handler: echo });
  gate.onStream(echo);
  const one = async (from: ServiceNode, to: string, i: number) => {
    const data = randomBytes(10_000 + ((i * 7919) % 200_000));
    const s = from.openStream(to);
    const back = readAll(s);
    await writeInPieces(s, data);
    const got = await back;
    assert.equal(sha(got), sha(data), `stream ${i} from ${from.id}`);
    return s.info?.id as number;
  };
  const fromGate = Array.from({ length: 150 }, (_, i) => one(gate, 'game', i));
  const fromGame = Array.from({ length: 50 }, (_, i) => one(game, 'gate', i));
  await waitFor(() => game.isConnected(gate.id), 5000, 'the game to know the gate');
  const ids = await within(Promise.all([...fromGate, ...fromGame]), 30_000, 'all echoes');
  assert.equal(new Set(ids.slice(0, 150)).size, 150);
  assert.ok(ids.slice(0, 150).every((id) => id % 2 === 1), 'the dialer (gate) opens odd ids');
  assert.ok(ids.slice(150).every((id) => id % 2 === 0), 'the acceptor (game) opens even ids');
  await waitForStreams(gate, 0);
  await waitForStreams(game, 0);
});

test('pipeline(socket, stream, socket): a TCP client through a stream gets its bytes back unchanged', async (t) => {
  const { gate } = await startPair(t, { handler: echo });
  // Half-open: the client's end() must not end the way back before the echo is through.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    pipeline(socket, gate.openStream('game', { meta: { client: `${socket.remotePort}` } }), socket).catch(() => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  await once(client, 'connect');
  const data = randomBytes(3 * 1024 * 1024);
  const back = readAll(client);
  client.end(data);
  const got = await within(back, 20_000, 'the echo through the gate');
  assert.equal(sha(got), sha(data));
});

test('half-close: after the opener ends, the acceptor still writes, then ends', async (t) => {
  let received = '';
  const { gate } = await startPair(t, {
    handler: (s) => {
      s.setEncoding('utf8');
      s.on('data', (c: string) => (received += c));
      s.on('end', async () => {
        for (let i = 0; i < 3; i++) {
          s.write(`late ${i};`);
          await sleep(20);
        }
        s.end('bye');
      });
    },
  });
  const s = await opened(gate.openStream('game'));
  s.end('hello');
  await within(once(s, 'finish'), 2000, 'our side to finish');
  const reply = (await within(readAll(s), 5000, 'their writes after our end')).toString();
  assert.equal(reply, 'late 0;late 1;late 2;bye');
  assert.equal(received, 'hello');
});

test('reset: the side that resets and the other side both see an error with its code and message', async (t) => {
  let theirs: MeshStream | undefined;
  const { gate } = await startPair(t, {
    handler: (s) => {
      theirs = s;
      s.on('data', (c: Buffer) => {
        if (c.toString() === 'reset me') s.reset('asked to');
      });
    },
  });
  // Reset by the acceptor.
  const a = await opened(gate.openStream('game'));
  a.write('reset me');
  const ea = await expectStreamError(a, 'cancelled', /asked to/);
  assert.ok(ea instanceof RpcError);
  await expectStreamError(theirs as MeshStream, 'cancelled', /asked to/);
  // Reset by the opener with an error of its own choosing.
  const b = await opened(gate.openStream('game'));
  await waitFor(() => theirs !== undefined && theirs !== (a as unknown), 2000, 'the second stream accepted');
  const second = theirs as MeshStream;
  b.destroy(new RpcError('busy', 'too much going on'));
  await expectStreamError(second, 'busy', /too much going on/);
  // A plain destroy() has no local error, and the peer is told `cancelled`.
  const c = await opened(gate.openStream('game'));
  await waitFor(() => theirs !== second, 2000, 'the third stream accepted');
  const third = theirs as MeshStream;
  c.destroy();
  await once(c, 'close');
  assert.equal(c.errored, null);
  await expectStreamError(third, 'cancelled');
  await waitForStreams(gate, 0);
});

test('opening toward a node without onStream fails at once with unknown_method', async (t) => {
  const { gate } = await startPair(t);
  const t0 = performance.now();
  const s = gate.openStream('game');
  await assert.rejects(once(s, 'open'), (err: unknown) => err instanceof RpcError && err.code === 'unknown_method' && /game#0@dev does not accept streams \(it has no node\.onStream handler\)/.test(err.message));
  assert.ok(performance.now() - t0 < 1000, 'at once, not at a deadline');
  await expectStreamError(s, 'unknown_method');
  // A write before the refusal fails too; the process is fine.
  const w = gate.openStream('game');
  w.write('lost');
  await expectStreamError(w, 'unknown_method');
});

test('a target that is not connected fails with unavailable; bad options throw at once', async (t) => {
  const { gate } = await startPair(t, { handler: echo });
  await expectStreamError(gate.openStream('nobody'), 'unavailable', /no instance of service "nobody"/);
  await expectStreamError(gate.openStream({ id: 'ghost#0@dev' }), 'unavailable');
  await expectStreamError(gate.openStream('nobody', { waitForInstance: true, timeoutMs: 200 }), 'timeout');
  assert.throws(() => gate.openStream('game', { window: 10 }), RangeError);
  assert.throws(() => gate.openStream('game', { window: 64 * 1024 * 1024 }), RangeError);
  assert.throws(() => gate.openStream('game', { meta: { big: 'x'.repeat(9000) } }), RangeError);
  const ac = new AbortController();
  const s = gate.openStream('game', { signal: ac.signal });
  ac.abort();
  await expectStreamError(s, 'cancelled');
});

test('the streams per link are capped: extra opens are refused with busy, on either side', async (t) => {
  const { gate } = await startPair(t, { handler: () => {}, game: { streams: { maxStreamsPerLink: 3 } } });
  const held = await Promise.all([0, 1, 2].map(() => opened(gate.openStream('game'))));
  await expectStreamError(gate.openStream('game'), 'busy', /3 streams open/);
  held[0]?.destroy();
  await waitForStreams(gate, 2);
  const again = await opened(gate.openStream('game'));
  again.destroy();
  // The opener's own cap.
  const { gate: small } = await startPair(t, { handler: () => {}, gate: { streams: { maxStreamsPerLink: 1 } } });
  await opened(small.openStream('game'));
  await expectStreamError(small.openStream('game'), 'busy', /1 streams are already open/);
});

test('a handler that throws resets the stream with application on both sides', async (t) => {
  const { gate } = await startPair(t, {
    handler: () => {
      throw new Error('handler broke');
    },
  });
  await expectStreamError(gate.openStream('game'), 'application', /handler broke/);
});

test('a reader that stops stalls only its own writer: bounded memory, other streams and RPC on the link go on', async (t) => {
  const WINDOW = 256 * 1024;
  let stalled: MeshStream | undefined;
  const { game, gate } = await startPair(t, {
    handler: (s, info) => {
      if (info.meta['mode'] === 'stall') {
        stalled = s;
        s.pause();
      } else echo(s);
    },
    game: { streams: { window: WINDOW } },
  });
  serveEcho(game);
  const slow = await opened(gate.openStream('game', { meta: { mode: 'stall' } }));
  const block = randomBytes(64 * 1024);
  // Write whenever the stream takes more, until it takes nothing for 300 ms.
  let written = 0;
  for (;;) {
    while (slow.write(block)) written += block.length;
    written += block.length;
    const more = await Promise.race([once(slow, 'drain').then(() => true), sleep(300).then(() => false)]);
    if (!more) break;
  }
  assert.ok(written >= WINDOW, `the writer got its window's worth out (${written} bytes)`);
  assert.ok(written <= WINDOW + 3 * block.length, `and not much more (${written} bytes): the window and the write buffer`);
  let drained = false;
  slow.once('drain', () => (drained = true));
  const s = stalled as MeshStream;
  assert.ok(s.readableLength <= WINDOW, `the stalled reader holds ${s.readableLength} bytes, within its window`);
  const onLink = hubOf(game).stats()[0];
  assert.ok(onLink && onLink.buffered <= WINDOW, `the game's link holds ${onLink?.buffered} unread bytes, within one window`);
  assert.equal(drained, false, 'the stalled writer gets no drain');
  // Meanwhile: another stream moves 4 MiB, and RPC answers, on the same link.
  const data = randomBytes(4 * 1024 * 1024);
  const other = await opened(gate.openStream('game'));
  const back = readAll(other);
  const rpcs = Array.from({ length: 50 }, (_, i) => gate.call('game', EchoReq, EchoResp, { text: `during-${i}`, n: i }, { timeoutMs: 3000 }));
  await writeInPieces(other, data);
  assert.equal(sha(await within(back, 20_000, 'the other stream')), sha(data));
  const answers = await Promise.all(rpcs);
  assert.deepEqual(
    answers.map((a) => a.n),
    answers.map((_, i) => i),
  );
  assert.equal(drained, false);
  assert.ok(s.readableLength <= WINDOW);
  // The reader resumes: the writer drains and every byte arrives, in order.
  let got = 0;
  const first = Buffer.alloc(block.length);
  s.on('data', (c: Buffer) => {
    if (got < block.length) c.copy(first, got, 0, Math.min(c.length, block.length - got));
    got += c.length;
  });
  s.resume();
  await within(once(slow, 'drain'), 5000, 'drain after the reader resumed');
  slow.end();
  await within(once(s, 'end'), 5000, 'the end of the stalled stream');
  assert.equal(got, written);
  assert.ok(first.equals(block));
});

test('the link dies: every stream on it errors with unavailable on both sides', async (t) => {
  const theirs: MeshStream[] = [];
  const { game, gate } = await startPair(t, {
    handler: (s) => {
      theirs.push(s);
      s.resume();
    },
  });
  const ours = await Promise.all(Array.from({ length: 20 }, () => opened(gate.openStream('game'))));
  await waitFor(() => theirs.length === 20, 2000, 'all accepted');
  for (const s of ours) s.write('x');
  // Cut the TCP connection under the link (as a crash of the peer's host would).
  const listener = (game as unknown as { listener: TcpListener }).listener;
  for (const session of listener.sessions) (session as unknown as { socket: net.Socket }).socket.destroy();
  for (const s of [...ours, ...theirs]) await expectStreamError(s, 'unavailable', /link to .* is lost/);
  await waitForStreams(gate, 0);
  await waitForStreams(game, 0);
});

test('a node that stops: its streams error unavailable on both sides, and it refuses new ones meanwhile', async (t) => {
  const theirs: MeshStream[] = [];
  const { game, gate, defer, sdaddr } = await startPair(t, {
    handler: (s) => {
      theirs.push(s);
      s.resume();
    },
    game: { shutdownTimeoutMs: 500 },
  });
  // Keep the stop in its drain phase with a call in flight, and try to open meanwhile.
  const slowCaller = await startNode(defer, sdaddr, { name: 'slow', dependencies: ['game'] });
  serveEcho(game);
  await slowCaller.whenReady();
  const ours = await opened(gate.openStream('game'));
  await waitFor(() => theirs.length === 1, 2000, 'accepted');
  const inflight = slowCaller.call('game', EchoReq, EchoResp, { text: 'sleep:300', n: 1 }, { timeoutMs: 3000 });
  await sleep(50);
  const stopping = game.stop();
  await sleep(20);
  await expectStreamError(gate.openStream({ id: game.id }), 'unavailable', /shutting down|not connected|no instance|lost|closed/);
  await inflight.catch(() => {});
  await stopping;
  await expectStreamError(ours, 'unavailable');
  await expectStreamError(theirs[0] as MeshStream, 'unavailable');
});
