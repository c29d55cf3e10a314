/**
 * Hostile and broken peers against an in-process DiscoveryServer: each bad
 * connection is closed, and a well-behaved client connected at the same time
 * keeps being served. Ends with a property test over random frame sequences.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { DiscoveryClient } from '../src/discovery/client.js';
import { DISCOVERY_PROTOCOL, M } from '../src/discovery/messages.js';
import { DiscoveryServer } from '../src/discovery/server.js';
import { asString } from '../src/discovery/values.js';
import { waitFor, within } from './helpers/proc.js';

interface Frame {
  msgId: number;
  seq: number;
  body: Buffer;
}

/** u32 BE length-of-rest | u16 BE msgId | u32 BE seq | body, written out by hand. */
function frame(msgId: number, seq: number, body: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.alloc(10 + body.length);
  out.writeUInt32BE(6 + body.length, 0);
  out.writeUInt16BE(msgId, 4);
  out.writeUInt32BE(seq >>> 0, 6);
  out.set(body, 10);
  return out;
}

/** A plain TCP socket that speaks raw bytes and parses the frames it gets back. */
class RawConn {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private buf = Buffer.alloc(0);
  private notify: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {}); // a reset from the server is one way of being closed
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 10) {
        const len = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + len) break;
        this.frames.push({ msgId: this.buf.readUInt16BE(4), seq: this.buf.readUInt32BE(6), body: Buffer.from(this.buf.subarray(10, 4 + len)) });
        this.buf = this.buf.subarray(4 + len);
      }
      this.notify?.();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.notify?.();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawConn> {
    const socket = net.connect({ host: '127.0.0.1', port });
    const conn = new RawConn(socket);
    await within(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 2000, 'raw connect');
    return conn;
  }

  /** Waits for a frame matching `pred`, or for the connection to close (undefined). */
  async next(pred: (f: Frame) => boolean, timeoutMs = 2000): Promise<Frame | undefined> {
    try {
      return await within(
        new Promise<Frame | undefined>((resolve) => {
          const check = () => {
            const f = this.frames.find(pred);
            if (!f && !this.isClosed) return;
            this.notify = undefined;
            resolve(f);
          };
          this.notify = check;
          check();
        }),
        timeoutMs,
        'a frame from the server',
      );
    } finally {
      this.notify = undefined;
    }
  }

  write(data: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Reads the Challenge and completes a Hello without a token. */
  async hello(): Promise<void> {
    const challenge = await this.next((f) => f.msgId === M.Challenge.id);
    assert.ok(challenge, 'the server sends a Challenge first');
    assert.equal(M.Challenge.decode(challenge.body).protocol, DISCOVERY_PROTOCOL);
    this.write(frame(M.Hello.id, 1, M.Hello.encode({ name: 'raw', proof: new Uint8Array(0), protocol: DISCOVERY_PROTOCOL })));
    const ack = await this.next((f) => f.seq === 1);
    assert.ok(ack, 'the server answers Hello');
    assert.equal(ack.msgId, M.HelloAck.id, `expected HelloAck, got message ${ack.msgId}`);
  }

  async expectClosed(timeoutMs = 3000): Promise<void> {
    await within(this.closed, timeoutMs, 'the server to close the connection');
  }

  /** The Error frames the server sent, decoded. */
  errors(): { seq: number; code: string; message: string }[] {
    return this.frames.filter((f) => f.msgId === M.Error.id).map((f) => ({ seq: f.seq, ...M.Error.decode(f.body) }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

let server: DiscoveryServer;
let good: DiscoveryClient;
let goodDisconnects = 0;
let port: number;
const raws = new Set<RawConn>();

async function raw(): Promise<RawConn> {
  const c = await RawConn.open(port);
  raws.add(c);
  return c;
}

let checks = 0;
/** The well-behaved client still gets answers: a put, then a get of what it wrote. */
async function goodClientWorks(): Promise<void> {
  const key = `good/${checks++}`;
  const value = `value ${checks} ${Math.random()}`;
  const rev = await within(good.put(key, value), 3000, 'the good client put');
  const kv = await within(good.get(key), 3000, 'the good client get');
  assert.ok(kv, `${key} was written`);
  assert.equal(asString(kv), value);
  assert.equal(kv.modRev, rev);
  assert.ok(good.connected, 'the good client is connected');
  assert.equal(goodDisconnects, 0, 'the good client was never disconnected');
}

/** Only the good client remains connected (the server dropped the bad ones). */
async function onlyGoodClientLeft(): Promise<void> {
  await waitFor(() => server.clientCount === 1, 3000, `the server to drop bad clients (has ${server.clientCount})`);
}

before(async () => {
  server = await new DiscoveryServer({ port: 0, logger: pino({ level: 'silent' }), handshakeTimeoutMs: 5000 }).start();
  port = server.address.port;
  good = await DiscoveryClient.connect({ addr: `127.0.0.1:${port}`, name: 'good', connectTimeoutMs: 3000, requestTimeoutMs: 3000 });
  good.on('disconnected', () => goodDisconnects++);
});

after(async () => {
  for (const c of raws) c.destroy();
  await good?.close();
  await server?.stop();
});

test('garbage bytes instead of frames: connection closed, good client unaffected', { timeout: 30_000 }, async () => {
  const c = await raw();
  c.write(Buffer.from('GET / HTTP/1.1\r\nHost: discovery\r\n\r\n'));
  await c.expectClosed();
  await goodClientWorks();
  await onlyGoodClientLeft();
});

test('a frame header claiming 0x7fffffff bytes is refused before any body arrives', { timeout: 30_000 }, async () => {
  const c = await raw();
  await c.next((f) => f.msgId === M.Challenge.id);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(0x7fffffff, 0);
  header.writeUInt16BE(M.Hello.id, 4);
  header.writeUInt32BE(1, 6);
  c.write(header);
  // Closed at once, not after waiting for 2 GB that never come.
  await c.expectClosed(2000);
  await goodClientWorks();
  await onlyGoodClientLeft();
});

test('an unknown message id after a valid Hello: Error frame, then closed', { timeout: 30_000 }, async () => {
  const c = await raw();
  await c.hello();
  c.write(frame(999, 77, Buffer.from([1, 2, 3])));
  await c.expectClosed();
  assert.deepEqual(
    c.errors().map((e) => [e.seq, e.code]),
    [[77, 'bad_request']],
  );
  assert.match(c.errors()[0]?.message ?? '', /999/);
  await goodClientWorks();
  await onlyGoodClientLeft();
});

test('a known message id with a corrupt protobuf body: Error frame, then closed', { timeout: 30_000 }, async () => {
  const corrupt = [
    Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length-delimited field with an impossible length
    Buffer.from([0x0a, 0x05, 0x61]), // 5 bytes declared, 1 present
    Buffer.from([0x0f]), // wire type 7
  ];
  for (const [i, body] of corrupt.entries()) {
    const c = await raw();
    await c.hello();
    c.write(frame(M.PutReq.id, 10 + i, body));
    await c.expectClosed();
    const errors = c.errors();
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]?.code, 'bad_request');
    assert.equal(errors[0]?.seq, 10 + i);
  }
  // And a corrupt Hello, before authentication.
  const c = await raw();
  await c.next((f) => f.msgId === M.Challenge.id);
  c.write(frame(M.Hello.id, 1, Buffer.from([0x0a, 0x05, 0x61])));
  await c.expectClosed();
  assert.equal(c.errors()[0]?.code, 'bad_request');
  assert.equal(await good.get('never/written'), undefined);
  await goodClientWorks();
  await onlyGoodClientLeft();
});

test('property: random frame sequences never crash the server or stop it serving a good client', { timeout: 30_000 }, async () => {
  const SENTINEL_SEQ = 0xfffffff0;
  const str = fc.string({ maxLength: 12 });
  const bytes = fc.uint8Array({ maxLength: 24 });
  // Well-formed bodies for the requests that change state, so the random
  // sequences also reach deep into the server, not only its decoder.
  const wellFormed = fc.oneof(
    fc.record({ key: str, value: bytes }).map((m) => [M.PutReq.id, M.PutReq.encode(m)] as const),
    fc.record({ key: str, prefix: fc.boolean() }).map((m) => [M.DeleteReq.id, M.DeleteReq.encode(m)] as const),
    fc.record({ watch_id: fc.nat({ max: 5 }), prefix: str }).map((m) => [M.WatchReq.id, M.WatchReq.encode(m)] as const),
    fc.record({ watch_id: fc.nat({ max: 5 }) }).map((m) => [M.CancelWatchReq.id, M.CancelWatchReq.encode(m)] as const),
    fc
      .record({
        compares: fc.array(fc.record({ key: str, mod_rev: fc.nat({ max: 50 }) }), { maxLength: 2 }),
        ops: fc.array(fc.record({ key: str, value: bytes, delete: fc.boolean(), prefix: fc.boolean() }), { maxLength: 3 }),
      })
      .map((m) => [M.TxnReq.id, M.TxnReq.encode(m)] as const),
    fc
      .record({ name: fc.constantFrom('game', 'chat', ''), id: fc.constantFrom('x#1', 'y#2', '!bad'), host: str, port: fc.integer({ min: 0, max: 70000 }), meta: fc.dictionary(str, str, { maxKeys: 2 }) })
      .map((desc) => [M.RegisterReq.id, M.RegisterReq.encode({ desc })] as const),
    fc.record({ name: str, id: str }).map((m) => [M.DeregisterReq.id, M.DeregisterReq.encode(m)] as const),
    fc.record({ name: str, protocol: fc.nat({ max: 3 }) }).map((m) => [M.Hello.id, M.Hello.encode({ ...m, proof: new Uint8Array(0) })] as const),
  );
  const randomFrame = fc
    .tuple(
      fc.oneof(
        fc.tuple(fc.oneof(fc.integer({ min: 100, max: 126 }), fc.integer({ min: 0, max: 0xffff })), bytes),
        wellFormed,
      ),
      fc.nat({ max: 1_000_000 }),
    )
    .map(([[msgId, body], seq]) => frame(msgId, seq, body));
  // Mostly frames; sometimes raw bytes that desynchronize the stream.
  const chunk = fc.oneof({ weight: 6, arbitrary: randomFrame }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b)) });

  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(chunk, { maxLength: 8 }), fc.boolean(), async (helloFirst, chunks, oneWrite) => {
      runs++;
      const c = await raw();
      try {
        if (helloFirst) await c.hello();
        else await c.next((f) => f.msgId === M.Challenge.id);
        if (oneWrite) c.write(Buffer.concat(chunks));
        else for (const b of chunks) c.write(b);
        // A sentinel request: once it is answered (or the connection is
        // closed), the server has dealt with everything sent before it.
        c.write(frame(M.GetReq.id, SENTINEL_SEQ, M.GetReq.encode({ key: 'sentinel' })));
        await c.next((f) => f.seq === SENTINEL_SEQ, 1000).catch(() => undefined);
      } finally {
        c.destroy();
        raws.delete(c);
      }
      await goodClientWorks();
    }),
    { numRuns: 100, interruptAfterTimeLimit: 15_000 },
  );
  assert.ok(runs >= 20, `only ${runs} runs completed`);
  await onlyGoodClientLeft();
  assert.ok(server.address.port === port, 'the server is still listening');
  await goodClientWorks();
});
