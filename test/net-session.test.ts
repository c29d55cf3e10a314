import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { dialTcp, listenTcp, type TcpListener, type TcpSession } from '../src/net/tcp.js';
import { dialWs, listenWs, WS_HEADER_BYTES, type WsListener } from '../src/net/ws.js';
import { HEARTBEAT_MSG_ID, type Session, type SessionOptions } from '../src/net/session.js';
import { encodeFrame, FrameDecoder, FrameError, HEADER_AFTER_LENGTH } from '../src/wire/frame.js';

type Kind = 'tcp' | 'ws';
const KINDS: Kind[] = ['tcp', 'ws'];

/** No timers: tests that are not about idle/heartbeat must not depend on them. */
const QUIET: SessionOptions = { idleTimeoutMs: 0, heartbeatMs: 0 };

interface Frame {
  msgId: number;
  seq: number;
  body: Buffer;
}

interface Closed {
  reason: string;
  error: Error | undefined;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const cleanups = new WeakMap<TestContext, (() => unknown)[]>();

/** Registers `fn` to run after the test, even when it fails; one stack per test, run last-in first-out. */
function cleanup(t: TestContext): (fn: () => unknown) => void {
  let fns = cleanups.get(t);
  if (!fns) {
    const stack: (() => unknown)[] = [];
    fns = stack;
    cleanups.set(t, stack);
    t.after(async () => {
      for (const fn of stack.reverse()) await fn();
    });
  }
  const list = fns;
  return (fn) => {
    list.push(fn);
  };
}

class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(ms = 2000, what = 'queue item'): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return within(new Promise<T>((resolve) => this.waiters.push(resolve)), ms, what);
  }
}

interface Watch {
  frames: Frame[];
  closes: Closed[];
  closed: Promise<Closed>;
  nextFrames(n: number, ms?: number): Promise<Frame[]>;
}
const watches = new WeakMap<Session, Watch>();

/**
 * Records frames and close events of a session. Server sessions are watched
 * from the moment they are accepted (some close before a test could attach).
 */
function watch(s: Session): Watch {
  const existing = watches.get(s);
  if (existing) return existing;
  const frames: Frame[] = [];
  const closes: Closed[] = [];
  let frameWaiter: (() => void) | undefined;
  s.on('frame', (msgId, seq, body) => {
    frames.push({ msgId, seq, body: Buffer.from(body) });
    frameWaiter?.();
  });
  const closed = new Promise<Closed>((resolve) => {
    s.on('close', (reason, error) => {
      closes.push({ reason, error });
      resolve({ reason, error });
    });
  });
  const w: Watch = {
    frames,
    closes,
    closed,
    nextFrames(n, ms = 3000) {
      return within(
        new Promise<Frame[]>((resolve) => {
          const check = (): void => {
            if (frames.length >= n) {
              frameWaiter = undefined;
              resolve(frames.splice(0, n));
            }
          };
          frameWaiter = check;
          check();
        }),
        ms,
        `${n} frames`,
      );
    },
  };
  watches.set(s, w);
  return w;
}

interface Server {
  kind: Kind;
  port: number;
  listener: TcpListener | WsListener;
  accepted: Queue<Session>;
  url: string;
  dial(opts?: SessionOptions): Promise<Session>;
}

async function serve(t: TestContext, kind: Kind, opts: SessionOptions & { maxConnections?: number } = QUIET): Promise<Server> {
  const defer = cleanup(t);
  const accepted = new Queue<Session>();
  const onSession = (s: Session): void => {
    watch(s);
    accepted.push(s);
  };
  const listener = kind === 'tcp' ? await listenTcp({ host: '127.0.0.1', port: 0, ...opts }, onSession) : await listenWs({ host: '127.0.0.1', port: 0, ...opts }, onSession);
  defer(() => within(listener.close(), 5000, `${kind} listener close`));
  const url = `ws://127.0.0.1:${listener.port}/`;
  return {
    kind,
    port: listener.port,
    listener,
    accepted,
    url,
    async dial(dialOpts = QUIET) {
      const s = kind === 'tcp' ? await dialTcp('127.0.0.1', listener.port, dialOpts) : await dialWs(url, dialOpts);
      defer(() => s.close('test over'));
      return s;
    },
  };
}

/** A plain TCP socket speaking raw bytes to the server. */
async function rawTcp(t: TestContext, port: number): Promise<net.Socket> {
  const sock = net.connect({ host: '127.0.0.1', port });
  cleanup(t)(() => sock.destroy());
  sock.on('error', () => {});
  await within(new Promise<void>((resolve) => sock.once('connect', () => resolve())), 2000, 'raw tcp connect');
  return sock;
}

/** A plain ws client that speaks raw messages to the server. */
async function rawWs(t: TestContext, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  cleanup(t)(() => ws.terminate());
  ws.on('error', () => {});
  await within(new Promise<void>((resolve) => ws.once('open', () => resolve())), 2000, 'raw ws open');
  return ws;
}

function socketClosed(sock: net.Socket): Promise<void> {
  return sock.destroyed && sock.closed ? Promise.resolve() : new Promise((resolve) => sock.once('close', () => resolve()));
}

function wsClosed(ws: WebSocket): Promise<number> {
  return ws.readyState === WebSocket.CLOSED ? Promise.resolve(-1) : new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

function wsMessage(msgId: number, seq: number, body: Uint8Array): Buffer {
  const b = Buffer.alloc(WS_HEADER_BYTES + body.length);
  b.writeUInt16BE(msgId, 0);
  b.writeUInt32BE(seq, 2);
  b.set(body, WS_HEADER_BYTES);
  return b;
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

// ---------------------------------------------------------------------------
// Tests, run for both transports
// ---------------------------------------------------------------------------

for (const kind of KINDS) {
  test(`${kind}: frames round-trip both ways`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const server = await srv.accepted.next();
    assert.equal(client.transport, kind);
    assert.equal(server.transport, kind);
    assert.notEqual(client.id, server.id);
    assert.match(server.remoteAddress, /^127\.0\.0\.1:\d+$/);
    const cw = watch(client);
    const sw = watch(server);
    // The server echoes with msgId + 1 and the body reversed, so an echo cannot be confused with its request.
    server.on('frame', (msgId, seq, body) => server.send(msgId + 1, seq, Buffer.from(body).reverse()));

    const sent: Frame[] = [
      { msgId: 1, seq: 1, body: Buffer.from('hello') },
      { msgId: 0xfffe, seq: 0xffffffff, body: Buffer.alloc(0) },
      { msgId: 300, seq: 0, body: pattern(100 * 1024, 7) },
    ];
    for (const f of sent) assert.equal(client.send(f.msgId, f.seq, f.body), true);
    assert.deepEqual(await sw.nextFrames(3), sent);
    assert.deepEqual(
      await cw.nextFrames(3),
      sent.map((f) => ({ msgId: f.msgId + 1, seq: f.seq, body: Buffer.from(f.body).reverse() })),
    );
    // Unsolicited server -> client push.
    assert.equal(server.send(9, 0, new Uint8Array([1, 2, 3])), true);
    assert.deepEqual(await cw.nextFrames(1), [{ msgId: 9, seq: 0, body: Buffer.from([1, 2, 3]) }]);
    assert.equal(client.closed, false);
    assert.equal(server.closed, false);
  });

  test(`${kind}: a burst of sends in one tick arrives complete and in order`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const sw = watch(await srv.accepted.next());
    let writes = 0;
    if (kind === 'tcp') {
      const sock = (client as TcpSession).socket;
      const orig = sock.write;
      sock.write = function (this: net.Socket, ...args: Parameters<net.Socket['write']>) {
        writes++;
        return orig.apply(this, args);
      } as typeof sock.write;
    }
    const n = 1000;
    for (let i = 0; i < n; i++) {
      const body = Buffer.alloc(4);
      body.writeUInt32BE(i);
      assert.equal(client.send(100 + (i % 7), i, body), true);
    }
    const got = await sw.nextFrames(n);
    assert.deepEqual(
      got.map((f) => f.seq),
      Array.from({ length: n }, (_, i) => i),
    );
    for (const f of got) {
      assert.equal(f.msgId, 100 + (f.seq % 7));
      assert.equal(f.body.readUInt32BE(0), f.seq);
    }
    if (kind === 'tcp') assert.equal(writes, 1, 'a burst of small frames is coalesced into one socket write');
  });

  test(`${kind}: the outbound cap closes a peer that never reads`, async (t) => {
    const maxOutbound = 256 * 1024;
    const srv = await serve(t, kind, { ...QUIET, maxOutbound });
    let resumeRaw: () => void;
    if (kind === 'tcp') {
      const raw = await rawTcp(t, srv.port);
      raw.pause();
      resumeRaw = () => raw.resume();
    } else {
      const raw = await rawWs(t, srv.url);
      raw.pause();
      resumeRaw = () => raw.resume();
    }
    const server = await srv.accepted.next();
    const sw = watch(server);
    const body = Buffer.alloc(16 * 1024, 0x5a);
    let maxSeen = 0;
    let sent = 0;
    let refused = false;
    const deadline = Date.now() + 4000;
    while (!refused && Date.now() < deadline) {
      for (let k = 0; k < 8; k++) {
        if (!server.send(7, sent, body)) {
          refused = true;
          break;
        }
        sent++;
        maxSeen = Math.max(maxSeen, server.outboundBytes);
      }
      await tick();
      maxSeen = Math.max(maxSeen, server.outboundBytes);
    }
    assert.equal(refused, true, `send was never refused after ${sent} frames`);
    assert.ok(sent * body.length > maxOutbound, 'the socket buffers filled before the cap hit');
    const { reason, error } = await within(sw.closed, 1000, 'close');
    assert.match(reason, /outbound queue/);
    assert.equal(error, undefined);
    assert.equal(server.closed, true);
    // A frame's header is not counted against the cap, hence a little slack.
    assert.ok(maxSeen <= maxOutbound + 64, `outboundBytes reached ${maxSeen}, cap ${maxOutbound}`);
    assert.ok(server.outboundBytes <= maxOutbound + 64, `outboundBytes ${server.outboundBytes} after close`);
    assert.equal(server.send(7, 0, body), false);
    assert.equal(sw.closes.length, 1);
    resumeRaw();
  });

  test(`${kind}: idle timeout closes a silent peer`, async (t) => {
    const srv = await serve(t, kind, { idleTimeoutMs: 200, heartbeatMs: 0 });
    const t0 = Date.now();
    let peerGone: Promise<unknown>;
    if (kind === 'tcp') {
      const raw = await rawTcp(t, srv.port);
      raw.resume();
      peerGone = socketClosed(raw);
    } else {
      peerGone = wsClosed(await rawWs(t, srv.url));
    }
    const sw = watch(await srv.accepted.next());
    const { reason } = await within(sw.closed, 2000, 'idle close');
    const elapsed = Date.now() - t0;
    assert.match(reason, /idle for over 200 ms/);
    assert.ok(elapsed >= 200, `closed after only ${elapsed} ms`);
    assert.ok(elapsed < 1500, `closed after ${elapsed} ms`);
    await within(peerGone, 2000, 'peer to see the close');
    assert.equal(srv.listener.sessions.size, 0);
  });

  test(`${kind}: heartbeats keep an idle link alive and are never emitted as frames`, async (t) => {
    const opts: SessionOptions = { idleTimeoutMs: 250, heartbeatMs: 50 };
    const srv = await serve(t, kind, opts);
    const client = await srv.dial(opts);
    const server = await srv.accepted.next();
    const cw = watch(client);
    const sw = watch(server);
    await sleep(600);
    assert.equal(client.closed, false, `client closed: ${cw.closes[0]?.reason}`);
    assert.equal(server.closed, false, `server closed: ${sw.closes[0]?.reason}`);
    assert.deepEqual(cw.frames, []);
    assert.deepEqual(sw.frames, []);
    // Real traffic still flows next to the heartbeats.
    client.send(5, 6, Buffer.from('x'));
    assert.deepEqual(await sw.nextFrames(1), [{ msgId: 5, seq: 6, body: Buffer.from('x') }]);
  });

  test(`${kind}: on the wire a heartbeat is msgId 0 with an empty body, and a peer's heartbeats count as traffic`, async (t) => {
    const srv = await serve(t, kind, { idleTimeoutMs: 250, heartbeatMs: 50 });
    const received: Frame[] = [];
    let sendHeartbeat: () => void;
    if (kind === 'tcp') {
      const raw = await rawTcp(t, srv.port);
      const decoder = new FrameDecoder((msgId, seq, body) => received.push({ msgId, seq, body: Buffer.from(body) }));
      raw.on('data', (chunk: Buffer) => decoder.push(chunk));
      sendHeartbeat = () => raw.write(encodeFrame(HEARTBEAT_MSG_ID, 0, Buffer.alloc(0)));
    } else {
      const raw = await rawWs(t, srv.url);
      raw.on('message', (data) => {
        const b = data as Buffer;
        received.push({ msgId: b.readUInt16BE(0), seq: b.readUInt32BE(2), body: Buffer.from(b.subarray(WS_HEADER_BYTES)) });
      });
      sendHeartbeat = () => raw.send(wsMessage(HEARTBEAT_MSG_ID, 0, new Uint8Array(0)));
    }
    const server = await srv.accepted.next();
    const sw = watch(server);
    const beat = setInterval(sendHeartbeat, 50);
    try {
      await sleep(600);
    } finally {
      clearInterval(beat);
    }
    assert.equal(server.closed, false, `closed despite heartbeats: ${sw.closes[0]?.reason}`);
    assert.deepEqual(sw.frames, [], 'inbound heartbeats are not emitted as frames');
    assert.ok(received.length >= 3, `only ${received.length} heartbeats in 600 ms`);
    for (const f of received) assert.deepEqual(f, { msgId: HEARTBEAT_MSG_ID, seq: 0, body: Buffer.alloc(0) });
    // Outbound heartbeats alone do not keep the server's side alive: once the peer stops, it is cut off.
    const { reason } = await within(sw.closed, 1500, 'idle close after heartbeats stop');
    assert.match(reason, /idle/);
  });

  test(`${kind}: an oversized frame and garbage bytes close only that session`, async (t) => {
    const maxFrame = 1024;
    const srv = await serve(t, kind, { ...QUIET, maxFrame });
    const good = await srv.dial({ ...QUIET, maxFrame });
    const goodServer = await srv.accepted.next();
    goodServer.on('frame', (msgId, seq, body) => goodServer.send(msgId, seq, body));
    const gw = watch(good);

    const badCases: { name: string; reason: RegExp; frameError: boolean; run(): Promise<{ gone: Promise<unknown> }> }[] =
      kind === 'tcp'
        ? [
            {
              name: 'length field alone over maxFrame',
              reason: /bad frame: frame of 1073741824 bytes exceeds the limit of 1024/,
              frameError: true,
              async run() {
                const raw = await rawTcp(t, srv.port);
                raw.resume();
                const head = Buffer.alloc(4);
                head.writeUInt32BE(1024 * 1024 * 1024);
                raw.write(head); // only the length: the rest never arrives
                return { gone: socketClosed(raw) };
              },
            },
            {
              name: 'one byte over maxFrame',
              reason: /exceeds the limit of 1024/,
              frameError: true,
              async run() {
                const raw = await rawTcp(t, srv.port);
                raw.resume();
                raw.write(encodeFrame(1, 1, Buffer.alloc(maxFrame - HEADER_AFTER_LENGTH + 1)));
                return { gone: socketClosed(raw) };
              },
            },
            {
              name: 'an HTTP request',
              reason: /bad frame: .*exceeds/,
              frameError: true,
              async run() {
                const raw = await rawTcp(t, srv.port);
                raw.resume();
                raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
                return { gone: socketClosed(raw) };
              },
            },
            {
              name: 'length below the header',
              reason: /bad frame: frame length 1 is below/,
              frameError: true,
              async run() {
                const raw = await rawTcp(t, srv.port);
                raw.resume();
                raw.write(Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
                return { gone: socketClosed(raw) };
              },
            },
          ]
        : [
            {
              name: 'message over maxFrame',
              reason: /websocket error: .*payload/i,
              frameError: false,
              async run() {
                const raw = await rawWs(t, srv.url);
                raw.send(wsMessage(1, 1, Buffer.alloc(4 * maxFrame)));
                return { gone: wsClosed(raw) };
              },
            },
            {
              name: 'message one byte over maxFrame',
              reason: /websocket error: .*payload/i,
              frameError: false,
              async run() {
                const raw = await rawWs(t, srv.url);
                raw.send(wsMessage(1, 1, Buffer.alloc(maxFrame - HEADER_AFTER_LENGTH + 1)));
                return { gone: wsClosed(raw) };
              },
            },
            {
              name: 'text message',
              reason: /bad frame: text messages/,
              frameError: true,
              async run() {
                const raw = await rawWs(t, srv.url);
                raw.send('hello');
                return { gone: wsClosed(raw) };
              },
            },
            {
              name: 'binary message shorter than the header',
              reason: /bad frame: message of 3 bytes is shorter/,
              frameError: true,
              async run() {
                const raw = await rawWs(t, srv.url);
                raw.send(Buffer.from([0, 1, 2]));
                return { gone: wsClosed(raw) };
              },
            },
          ];

    for (const c of badCases) {
      const { gone: peerGone } = await c.run();
      const bad = await srv.accepted.next(2000, `session for ${c.name}`);
      const bw = watch(bad);
      const { reason, error } = await within(bw.closed, 2000, `close of ${c.name}`);
      assert.match(reason, c.reason, c.name);
      assert.ok(error instanceof Error, `${c.name}: close carries the error`);
      if (c.frameError) assert.ok(error instanceof FrameError, `${c.name}: ${error?.name}`);
      assert.deepEqual(bw.frames, [], c.name);
      await within(peerGone, 2000, `${c.name}: peer disconnected`);
      // The well-behaved session on the same listener is unaffected, including a frame exactly at the limit.
      const atLimit = pattern(maxFrame - HEADER_AFTER_LENGTH, 3);
      assert.equal(good.send(2, 3, atLimit), true);
      assert.deepEqual(await gw.nextFrames(1), [{ msgId: 2, seq: 3, body: atLimit }], c.name);
      assert.equal(goodServer.closed, false, c.name);
      assert.deepEqual([...srv.listener.sessions], [goodServer], c.name);
    }
  });

  test(`${kind}: close() emits 'close' exactly once with the first reason; send() after close returns false`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const server = await srv.accepted.next();
    const sw = watch(server);
    const cw = watch(client);
    server.close('first');
    server.close('second');
    server.close('third', new Error('ignored'));
    assert.equal(server.closed, true);
    assert.deepEqual(sw.closes, [{ reason: 'first', error: undefined }]);
    assert.equal(server.send(1, 1, Buffer.from('late')), false);
    // The peer notices; the transport's own close events then arrive at the server and must not re-emit.
    const peer = await within(cw.closed, 3000, 'peer close');
    assert.match(peer.reason, /closed by peer/);
    await sleep(50);
    assert.deepEqual(sw.closes, [{ reason: 'first', error: undefined }]);
    assert.equal(cw.closes.length, 1);
    assert.equal(client.send(1, 1, Buffer.from('late')), false);
    assert.deepEqual(sw.frames, []);
    assert.equal(srv.listener.sessions.size, 0);
  });

  test(`${kind}: close() with an error aborts; 'close' carries that error`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const server = await srv.accepted.next();
    const sw = watch(server);
    const cw = watch(client);
    const err = new Error('kaput');
    server.close('aborting', err);
    server.close('again');
    assert.deepEqual(sw.closes, [{ reason: 'aborting', error: err }]);
    await within(cw.closed, 3000, 'peer close');
    await sleep(20);
    assert.equal(sw.closes.length, 1);
  });

  test(`${kind}: frames sent just before close() are still delivered`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const server = await srv.accepted.next();
    const cw = watch(client);
    assert.equal(server.send(5, 42, Buffer.from('bye')), true);
    assert.equal(server.send(6, 43, Buffer.from('really')), true);
    server.close('done');
    await within(cw.closed, 3000, 'peer close');
    assert.deepEqual(cw.frames, [
      { msgId: 5, seq: 42, body: Buffer.from('bye') },
      { msgId: 6, seq: 43, body: Buffer.from('really') },
    ]);
  });

  test(`${kind}: a frame handler that closes the session gets no further frames`, async (t) => {
    const srv = await serve(t, kind);
    let sendThree: () => void;
    if (kind === 'tcp') {
      const raw = await rawTcp(t, srv.port);
      raw.resume();
      // One write, so the three frames almost surely arrive in one chunk.
      sendThree = () => raw.write(Buffer.concat([1, 2, 3].map((i) => encodeFrame(10, i, Buffer.from([i])))));
    } else {
      const raw = await rawWs(t, srv.url);
      sendThree = () => {
        for (const i of [1, 2, 3]) raw.send(wsMessage(10, i, Buffer.from([i])));
      };
    }
    const server = await srv.accepted.next();
    const seen: number[] = [];
    server.on('frame', (_msgId, seq) => {
      seen.push(seq);
      server.close('handler said so');
    });
    const sw = watch(server);
    sendThree();
    assert.equal((await within(sw.closed, 2000, 'close')).reason, 'handler said so');
    await sleep(50);
    assert.deepEqual(seen, [1]);
  });

  test(`${kind}: a throwing frame handler closes the session with its error`, async (t) => {
    const srv = await serve(t, kind);
    const client = await srv.dial();
    const server = await srv.accepted.next();
    const boom = new Error('boom');
    server.on('frame', () => {
      throw boom;
    });
    const sw = watch(server);
    const cw = watch(client);
    client.send(1, 1, Buffer.from('x'));
    const { reason, error } = await within(sw.closed, 2000, 'close');
    assert.match(reason, /frame handler failed: boom/);
    assert.equal(error, boom);
    await within(cw.closed, 2000, 'peer close');
  });

  test(`${kind}: maxConnections turns extra connections away and listener.close() closes the rest`, async (t) => {
    const srv = await serve(t, kind, { ...QUIET, maxConnections: 1 });
    const first = await srv.dial();
    const firstServer = await srv.accepted.next();
    const fw = watch(first);
    const fsw = watch(firstServer);
    const second = await srv.dial().catch(() => undefined);
    if (second) {
      const { reason } = await within(watch(second).closed, 2000, 'rejected connection to close');
      assert.match(reason, /closed by peer|error/);
    }
    firstServer.on('frame', (m, s, b) => firstServer.send(m, s, b));
    first.send(1, 2, Buffer.from('still here'));
    assert.deepEqual(await fw.nextFrames(1), [{ msgId: 1, seq: 2, body: Buffer.from('still here') }]);
    assert.equal(srv.listener.sessions.size, 1);
    await within(srv.listener.close(), 3000, 'listener close');
    assert.deepEqual(fsw.closes, [{ reason: 'listener closed', error: undefined }]);
    await within(fw.closed, 2000, 'client to see the listener close');
    assert.equal(srv.listener.sessions.size, 0);
  });

  test(`${kind}: dialing a port with nothing listening rejects`, async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const dial: Promise<Session> = kind === 'tcp' ? dialTcp('127.0.0.1', port, { ...QUIET, connectTimeoutMs: 1000 }) : dialWs(`ws://127.0.0.1:${port}/`, { ...QUIET, connectTimeoutMs: 1000 });
    await assert.rejects(within(dial, 2000, 'dial failure'), /ECONNREFUSED/);
  });
}

test('tcp: large frames mixed with small ones in one tick arrive intact and in order', async (t) => {
  const srv = await serve(t, 'tcp', { ...QUIET, maxFrame: 256 * 1024 });
  const client = await srv.dial();
  const sw = watch(await srv.accepted.next());
  const sent: Frame[] = [];
  for (let i = 0; i < 12; i++) {
    const body = i % 3 === 0 ? pattern(40 * 1024 + i, i) : pattern(i * 5, i);
    sent.push({ msgId: 20 + i, seq: i, body });
    assert.equal(client.send(20 + i, i, body), true);
  }
  assert.deepEqual(await sw.nextFrames(sent.length), sent);
  // A single frame on its own tick is written as is.
  assert.equal(client.send(99, 99, Buffer.from('solo')), true);
  assert.deepEqual(await sw.nextFrames(1), [{ msgId: 99, seq: 99, body: Buffer.from('solo') }]);
});

test('tcp: session options left undefined fall back to the defaults', async (t) => {
  const srv = await serve(t, 'tcp', { maxFrame: undefined, idleTimeoutMs: 0, heartbeatMs: 0 });
  const client = await srv.dial({ ...QUIET, maxOutbound: undefined });
  const sw = watch(await srv.accepted.next());
  const body = pattern(512 * 1024, 1);
  assert.equal(client.send(1, 1, body), true);
  const [f] = await sw.nextFrames(1);
  assert.ok(f?.body.equals(body));
});
