import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { WebSocket } from 'ws';
import { listenTcp } from '../src/net/tcp.js';
import { listenWs } from '../src/net/ws.js';
import { SharedFrame, WS_HEADER_BYTES, wsServerFrame } from '../src/net/shared-frame.js';
import type { Session, SessionOptions } from '../src/net/session.js';
import { FrameDecoder } from '../src/wire/frame.js';

/** ws's frame parser; its types do not declare it. */
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (opts: { isServer: boolean; binaryType: string; maxPayload: number }) => NodeJS.EventEmitter & { write(chunk: Buffer): void };
};

const QUIET: SessionOptions = { idleTimeoutMs: 0, heartbeatMs: 0 };

interface Msg {
  msgId: number;
  seq: number;
  body: Buffer;
}

function decodeWs(data: Buffer): Msg {
  return { msgId: data.readUInt16BE(0), seq: data.readUInt32BE(2), body: Buffer.from(data.subarray(WS_HEADER_BYTES)) };
}

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

/** Counts the writes of each accepted socket and remembers the buffers written. */
function spyWrites(socket: net.Socket): Buffer[] {
  const writes: Buffer[] = [];
  const original = socket.write.bind(socket) as (chunk: Buffer, cb?: () => void) => boolean;
  socket.write = ((chunk: Buffer, cb?: () => void) => {
    writes.push(chunk);
    return original(chunk, cb);
  }) as typeof socket.write;
  return writes;
}

interface WsRig {
  sessions: Array<{ session: Session; writes: Buffer[] }>;
  clients: WebSocket[];
  received: Msg[][];
}

async function wsRig(t: TestContext, n: number): Promise<WsRig> {
  const rig: WsRig = { sessions: [], clients: [], received: [] };
  const accepted: Array<(s: { session: Session; writes: Buffer[] }) => void> = [];
  const listener = await listenWs({ host: '127.0.0.1', port: 0, ...QUIET }, (session, req: IncomingMessage) => {
    const entry = { session, writes: spyWrites(req.socket) };
    rig.sessions.push(entry);
    accepted.shift()?.(entry);
  });
  t.after(() => listener.close());
  for (let i = 0; i < n; i++) {
    const got = new Promise<unknown>((resolve) => accepted.push(resolve));
    const ws = new WebSocket(`ws://127.0.0.1:${listener.port}/`, { perMessageDeflate: false });
    const inbox: Msg[] = [];
    ws.on('message', (data: Buffer) => inbox.push(decodeWs(data)));
    t.after(() => ws.terminate());
    await deadline(new Promise((resolve) => ws.once('open', resolve)), 5000, 'ws open');
    await deadline(got, 5000, 'server session');
    rig.clients.push(ws);
    rig.received.push(inbox);
  }
  return rig;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('ws: everything sent to one client in one turn leaves in one socket write, each message whole', async (t) => {
  const rig = await wsRig(t, 1);
  const { session, writes } = rig.sessions[0]!;
  writes.length = 0;
  // Payload lengths on either side of the 7-bit/16-bit length encodings (the 64-bit one is in the property below).
  const bodies = [0, 1, 119, 120, 200, 4000].map((n, i) => Buffer.alloc(n, i + 1));
  bodies.forEach((b, i) => assert.equal(session.send(500 + i, i + 1, b), true));
  assert.equal(writes.length, 0, 'nothing is written before the end of the turn');
  await until(() => rig.received[0]!.length === bodies.length, 'all messages');
  assert.equal(writes.length, 1, `one write for ${bodies.length} messages`);
  rig.received[0]!.forEach((m, i) => assert.deepEqual(m, { msgId: 500 + i, seq: i + 1, body: bodies[i] }));
  // Big messages are not copied together: they are corked, so still one syscall.
  writes.length = 0;
  const big = [70_000, 65_530, 10].map((n, i) => Buffer.alloc(n, i + 7));
  big.forEach((b, i) => session.send(520 + i, 0, b));
  await until(() => rig.received[0]!.length === bodies.length + big.length, 'big messages');
  rig.received[0]!.slice(bodies.length).forEach((m, i) => assert.deepEqual(m, { msgId: 520 + i, seq: 0, body: big[i] }));
});

test('a SharedFrame is framed once per transport and the same bytes go to every socket', async (t) => {
  const rig = await wsRig(t, 3);
  const tcpWrites: Buffer[][] = [];
  const tcpSessions: Session[] = [];
  const tcp = await listenTcp({ host: '127.0.0.1', port: 0, ...QUIET }, (s) => {
    tcpSessions.push(s);
    tcpWrites.push(spyWrites((s as unknown as { socket: net.Socket }).socket));
  });
  t.after(() => tcp.close());
  const tcpInbox: Msg[][] = [];
  for (let i = 0; i < 3; i++) {
    const sock = net.connect({ host: '127.0.0.1', port: tcp.port });
    t.after(() => sock.destroy());
    const inbox: Msg[] = [];
    const dec = new FrameDecoder((msgId, seq, body) => inbox.push({ msgId, seq, body: Buffer.from(body) }));
    sock.on('data', (c: Buffer) => dec.push(c));
    tcpInbox.push(inbox);
  }
  await until(() => tcpSessions.length === 3, 'tcp sessions');
  for (const s of rig.sessions) s.writes.length = 0;
  const body = Buffer.from('the same bytes for everyone');
  const frame = new SharedFrame(777, 0, body);
  for (const s of [...rig.sessions.map((e) => e.session), ...tcpSessions]) assert.equal(s.sendFrame(frame), true);
  await until(() => rig.received.every((r) => r.length === 1) && tcpInbox.every((r) => r.length === 1), 'the broadcast everywhere');
  for (const inbox of [...rig.received, ...tcpInbox]) assert.deepEqual(inbox[0], { msgId: 777, seq: 0, body });
  // Identity, not equality: one buffer per transport, queued on every socket.
  for (const s of rig.sessions) assert.equal(s.writes[0], frame.wsFrame());
  for (const w of tcpWrites) assert.equal(w[w.length - 1], frame.tcpFrame());
});

test('ws: a graceful close sends what was queued first, then the close frame', async (t) => {
  const rig = await wsRig(t, 1);
  const closed = new Promise<number>((resolve) => rig.clients[0]!.once('close', (code) => resolve(code)));
  rig.sessions[0]!.session.send(600, 9, Buffer.from('last words'));
  rig.sessions[0]!.session.close('bye');
  assert.equal(await deadline(closed, 5000, 'close'), 1000);
  assert.deepEqual(rig.received[0], [{ msgId: 600, seq: 9, body: Buffer.from('last words') }]);
  assert.equal(rig.sessions[0]!.session.send(601, 0, Buffer.alloc(1)), false, 'a closed session refuses more');
});

test('ws: a session whose client stopped reading is cut off at maxOutbound, shared frames included', async (t) => {
  const listener = await listenWs({ host: '127.0.0.1', port: 0, ...QUIET, maxOutbound: 64 * 1024 }, (session) => {
    const frame = new SharedFrame(700, 0, Buffer.alloc(16 * 1024));
    let sent = 0;
    while (session.sendFrame(frame)) sent++;
    assert.ok(sent >= 3 && sent <= 4, `sent ${sent} frames of 16 KiB under a 64 KiB cap`);
    assert.equal(session.closed, true);
  });
  t.after(() => listener.close());
  const ws = new WebSocket(`ws://127.0.0.1:${listener.port}/`, { perMessageDeflate: false });
  t.after(() => ws.terminate());
  const code = await deadline(new Promise<number>((resolve) => ws.once('close', (c) => resolve(c))), 5000, 'cut-off');
  assert.ok(code === 1006 || code === 1000, `closed (${code})`);
});

test('wsServerFrame: any run of frames decodes, message by message, with ws\'s own receiver', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ msgId: fc.integer({ min: 0, max: 0xffff }), seq: fc.nat(), len: fc.oneof(fc.nat(200), fc.integer({ min: 65_400, max: 66_000 })) }), { minLength: 1, maxLength: 6 }), fc.nat(64), (msgs, split) => {
      const out: Msg[] = [];
      const rx = new Receiver({ isServer: false, binaryType: 'nodebuffer', maxPayload: 0 });
      rx.on('message', (data: Buffer) => out.push(decodeWs(data)));
      const bodies = msgs.map((m, i) => Buffer.alloc(m.len, i));
      const bytes = Buffer.concat(msgs.map((m, i) => wsServerFrame(m.msgId, m.seq, bodies[i]!)));
      const cut = Math.min(split, bytes.length);
      rx.write(bytes.subarray(0, cut));
      rx.write(bytes.subarray(cut));
      assert.deepEqual(out, msgs.map((m, i) => ({ msgId: m.msgId, seq: m.seq, body: bodies[i] })));
    }),
    { numRuns: 60 },
  );
});
