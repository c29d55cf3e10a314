/**
 * Hostile and broken peers on raw TCP sockets against a service's link port:
 * garbage, bad frame lengths, frames before the handshake, LinkHellos with
 * bad proofs, random frames after a valid handshake (done by hand with the
 * HMAC from src/service/link.ts), responses and cancels aimed at other
 * peers' calls, and a fake acceptor without the secret. Throughout, a good
 * peer calls the service and the service calls it back; not one of those
 * calls may fail and their link may never drop.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { DiscoveryClient } from '../src/discovery/client.js';
import { L, LINK_PROTOCOL } from '../src/service/messages.js';
import type { ServiceNode } from '../src/service/node.js';
import { RESPONSE_BIT } from '../src/service/rpc.js';
import { encodeFrame, HEADER_AFTER_LENGTH } from '../src/wire/frame.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, SECRET, serveEcho, startDiscoveryServer, startNode, type Defer, type EchoStats } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';
import { hmac, RawLink } from './helpers/raw-link.js';

/** ServiceNode's default maxFrame (the `length` field's limit). */
const MAX_FRAME = 4 * 1024 * 1024;

interface Mesh {
  defer: Defer;
  sdaddr: string;
  target: ServiceNode;
  good: ServiceNode;
  targetStats: EchoStats;
  goodStats: EchoStats;
  port: number;
  /** Peers other than `good` that came up on the target. */
  strangers: string[];
  /** Stops the background traffic and checks that the good peer was served throughout. */
  finish(): Promise<void>;
}

/**
 * A target service ("echo", depending on "good") and a good peer ("good",
 * depending on "echo"), with calls going both ways all the time.
 */
async function startMesh(t: Parameters<typeof cleanupStack>[0]): Promise<Mesh> {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  let targetStats: EchoStats = { calls: 0, begun: [], aborted: [] };
  let goodStats: EchoStats = targetStats;
  const downs: string[] = [];
  const strangers: string[] = [];
  const GOOD_ID = 'good#0@dev';
  const TARGET_ID = 'echo#0@dev';
  const target = await startNode(defer, addr, { name: 'echo', dependencies: ['good'] }, (n) => {
    targetStats = serveEcho(n);
    n.on('peerDown', (p, reason) => {
      if (p.id === GOOD_ID) downs.push(`echo lost ${p.id}: ${reason}`);
    });
    n.on('peerUp', (p) => {
      if (p.id !== GOOD_ID) strangers.push(p.id);
    });
  });
  const good = await startNode(defer, addr, { name: 'good', dependencies: ['echo'] }, (n) => {
    goodStats = serveEcho(n);
    n.on('peerDown', (p, reason) => {
      if (p.id === TARGET_ID) downs.push(`good lost ${p.id}: ${reason}`);
    });
  });
  assert.equal(target.id, TARGET_ID);
  assert.equal(good.id, GOOD_ID);
  await within(Promise.all([target.whenReady(), good.whenReady()]), 5000, 'target and good peer ready');
  await waitFor(() => target.instances('good').length === 1 && good.instances('echo').length === 1, 5000, 'linked both ways');

  const failures: string[] = [];
  const ok = { toTarget: 0, toGood: 0 };
  let running = true;
  const loop = async (from: ServiceNode, to: string, count: 'toTarget' | 'toGood', k: number) => {
    let n = 0;
    while (running) {
      const text = `bg-${k}-${n++}`;
      try {
        const res = await from.call(to, EchoReq, EchoResp, { text, n }, { timeoutMs: 3000 });
        if (res.text !== text || res.server !== (to === 'echo' ? target.id : good.id)) failures.push(`${from.id} -> ${to}: wrong answer ${JSON.stringify(res)}`);
        else ok[count]++;
      } catch (err) {
        failures.push(`${from.id} -> ${to}: ${(err as Error).message}`);
      }
      await sleep(2);
    }
  };
  const loops = [loop(good, 'echo', 'toTarget', 1), loop(good, 'echo', 'toTarget', 2), loop(target, 'good', 'toGood', 3), loop(target, 'good', 'toGood', 4)];
  const stopLoops = async () => {
    running = false;
    await Promise.all(loops);
  };
  defer(stopLoops);
  return {
    defer,
    sdaddr: addr,
    target,
    good,
    get targetStats() {
      return targetStats;
    },
    get goodStats() {
      return goodStats;
    },
    port: target.address.port,
    strangers,
    async finish() {
      await stopLoops();
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} calls between the good peers failed`);
      assert.deepEqual(downs, [], 'the good link never dropped');
      assert.ok(ok.toTarget >= 10 && ok.toGood >= 10, `background calls kept flowing: ${JSON.stringify(ok)}`);
      assert.equal((await good.call('echo', EchoReq, EchoResp, { text: 'final' })).server, target.id);
      assert.equal((await target.call('good', EchoReq, EchoResp, { text: 'final' })).server, good.id);
      assert.deepEqual(target.instances('good').map((p) => p.id), [good.id]);
    },
  };
}

/**
 * Whether the service must close a connection on which `bytes` arrive
 * before the handshake: a bad length, or any complete frame other than a
 * heartbeat (which is never delivered). A prefix of a frame is not enough.
 */
function mustRefuse(bytes: Uint8Array): boolean {
  const b = Buffer.from(bytes);
  let pos = 0;
  while (b.length - pos >= 4) {
    const len = b.readUInt32BE(pos);
    if (len < HEADER_AFTER_LENGTH || len > MAX_FRAME) return true;
    if (b.length - pos < 4 + len) return false;
    if (b.readUInt16BE(pos + 4) !== 0) return true;
    pos += 4 + len;
  }
  return false;
}

test('garbage before the handshake never yields a link, and complete garbage frames are refused', async (t) => {
  const mesh = await startMesh(t);
  // Biased towards plausible headers so that many inputs decode as frames.
  const header = fc.tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffffff })).map(([len, id, seq]) => {
    const h = Buffer.alloc(10);
    h.writeUInt32BE(len, 0);
    h.writeUInt16BE(id, 4);
    h.writeUInt32BE(seq, 6);
    return h;
  });
  const garbage = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 200 }),
    fc.tuple(header, fc.uint8Array({ maxLength: 80 })).map(([h, rest]) => Buffer.concat([h, rest])),
  );
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(garbage, fc.boolean(), async (bytes, readChallengeFirst) => {
      const c = await RawLink.open(mesh.defer, mesh.port);
      try {
        if (readChallengeFirst) await c.challenge();
        c.write(bytes);
        if (mustRefuse(bytes)) {
          await c.expectClosed('garbage frame');
          refused++;
        } else {
          await sleep(20);
        }
        assert.equal(c.frames.filter((f) => f.msgId === L.LinkWelcome.id).length, 0, 'no LinkWelcome for garbage');
      } finally {
        c.destroy();
      }
    }),
    { numRuns: 60, interruptAfterTimeLimit: 8000 },
  );
  assert.ok(refused > 5, `only ${refused} inputs were complete frames`);
  assert.deepEqual(mesh.strangers, [], 'no link came up');
  await mesh.finish();
});

test('bad frame lengths are cut off from the length field alone, before and after the handshake', async (t) => {
  const mesh = await startMesh(t);
  const lengthOnly = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    return b;
  };
  let run = 0;
  for (const afterHandshake of [false, true]) {
    for (const len of [MAX_FRAME + 1, 0xffffffff, 0, HEADER_AFTER_LENGTH - 1]) {
      const c = await RawLink.open(mesh.defer, mesh.port);
      if (afterHandshake) await c.handshake(`fuzz#${run++}@dev`);
      else await c.challenge();
      c.write(lengthOnly(len)); // no body follows: the service must not wait for one
      await c.expectClosed(`length ${len}${afterHandshake ? ' after the handshake' : ''}`, 1000);
    }
    // At the limit exactly, the service waits for the body instead.
    const c = await RawLink.open(mesh.defer, mesh.port);
    if (afterHandshake) await c.handshake(`fuzz#${run++}@dev`);
    else await c.challenge();
    c.write(lengthOnly(MAX_FRAME));
    await sleep(100);
    assert.equal(c.isClosed, false, 'a frame of exactly maxFrame is allowed');
    c.destroy();
  }
  await mesh.finish();
});

test('any frame but LinkHello before the handshake is refused with unauthorized', async (t) => {
  const mesh = await startMesh(t);
  const known = fc.constantFrom(L.LinkChallenge.id, L.LinkWelcome.id, L.RpcError.id, L.RpcCancel.id, L.LoadReport.id, L.Draining.id, L.TraceContext.id, EchoReq.id, EchoResp.id);
  const msgId = fc.oneof(known, fc.integer({ min: 1, max: 0xffff })).filter((id) => id !== L.LinkHello.id);
  const body = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constant(EchoReq.encode({ text: 'sleep:10000' })));
  await fc.assert(
    fc.asyncProperty(msgId, fc.integer({ min: 0, max: 0xffffffff }), body, async (id, seq, b) => {
      const c = await RawLink.open(mesh.defer, mesh.port);
      try {
        c.send(id, seq, b);
        await c.expectClosed(`message ${id} before the handshake`);
        const errors = c.errors();
        assert.equal(errors.length, 1, 'exactly one refusal');
        assert.equal(errors[0]?.code, 'unauthorized');
        assert.equal(errors[0]?.seq, 0);
        assert.match(errors[0]?.message ?? '', new RegExp(`expected LinkHello, got message ${id}`));
      } finally {
        c.destroy();
      }
    }),
    { numRuns: 40, interruptAfterTimeLimit: 8000 },
  );
  assert.equal(mesh.targetStats.begun.includes('sleep:10000'), false, 'no request before the handshake reached a handler');
  await mesh.finish();
});

test('a LinkHello without a valid proof is refused', async (t) => {
  const mesh = await startMesh(t);
  const refusedHello = async (make: (nonce: Buffer) => Uint8Array, what: string, reason: RegExp) => {
    const c = await RawLink.open(mesh.defer, mesh.port);
    try {
      const nonce = await c.challenge();
      c.send(L.LinkHello.id, 1, make(nonce));
      await c.expectClosed(what);
      assert.equal(c.frames.filter((f) => f.msgId === L.LinkWelcome.id).length, 0, `${what}: no LinkWelcome`);
      const errors = c.errors();
      assert.equal(errors[0]?.code, 'unauthorized', `${what}: refused as unauthorized`);
      assert.match(errors[0]?.message ?? '', reason, what);
      return nonce;
    } finally {
      c.destroy();
    }
  };
  const hello = (id: string, proof: Uint8Array, protocol = LINK_PROTOCOL) => L.LinkHello.encode({ id, name: 'fuzz', addr: 7, nonce: randomBytes(16), proof, protocol, load: 0 });
  const noSecret = /does not hold the cluster secret/;

  await refusedHello(() => hello('fuzz#1@dev', new Uint8Array(0)), 'an empty proof', noSecret);
  await refusedHello((n) => hello('fuzz#1@dev', hmac('wrong secret', 'gamemesh-link-dial', n, 'fuzz#1@dev')), 'a proof made with another secret', noSecret);
  await refusedHello((n) => hello('fuzz#1@dev', hmac(SECRET, 'gamemesh-link-dial', n, 'fuzz#2@dev')), "a proof made for another peer's id", noSecret);
  await refusedHello((n) => hello('fuzz#1@dev', hmac(SECRET, 'gamemesh-link-accept', n, 'fuzz#1@dev')), "the acceptor's proof label", noSecret);
  await refusedHello((n) => hello('fuzz#1@dev', hmac(SECRET, 'gamemesh-link-dial', n, 'fuzz#1@dev'), LINK_PROTOCOL + 1), 'another protocol version', /protocol 2 is not supported/);
  // Replay: a proof that was valid for an earlier connection's nonce.
  const old = await RawLink.open(mesh.defer, mesh.port);
  const oldNonce = await old.challenge();
  old.destroy();
  await refusedHello(() => hello('fuzz#1@dev', hmac(SECRET, 'gamemesh-link-dial', oldNonce, 'fuzz#1@dev')), 'a replayed proof', noSecret);

  await fc.assert(
    fc.asyncProperty(
      fc.record({
        id: fc.string({ maxLength: 40 }),
        name: fc.string({ maxLength: 20 }),
        addr: fc.integer({ min: 0, max: 0xffffffff }),
        proof: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 32, maxLength: 32 })),
        load: fc.double(),
      }),
      async (h) => {
        await refusedHello(() => L.LinkHello.encode({ ...h, nonce: randomBytes(16), protocol: LINK_PROTOCOL }), `random hello ${JSON.stringify(h.id)}`, noSecret);
      },
    ),
    { numRuns: 40, interruptAfterTimeLimit: 8000 },
  );
  assert.deepEqual(mesh.strangers, [], 'no link came up');
  // The same raw client with the right proof does get in: the refusals above were about the proof.
  const c = await RawLink.open(mesh.defer, mesh.port);
  const w = await c.handshake('fuzz#1@dev');
  assert.equal(w.id, mesh.target.id);
  await waitFor(() => mesh.strangers.includes('fuzz#1@dev'), 2000, 'the target to see the raw peer');
  c.destroy();
  await mesh.finish();
});

test('random frames after a valid handshake: the service answers or drops the link, and keeps serving', async (t) => {
  const mesh = await startMesh(t);
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const seq = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 1, max: 64 }).map((s) => (s | RESPONSE_BIT) >>> 0),
    u32,
    u32.map((s) => (s | RESPONSE_BIT) >>> 0),
  );
  const msgId = fc.oneof(fc.constantFrom(0, L.LinkChallenge.id, L.LinkHello.id, L.LinkWelcome.id, L.RpcError.id, L.RpcCancel.id, L.LoadReport.id, L.Draining.id, L.TraceContext.id, EchoReq.id, EchoResp.id), fc.integer({ min: 0, max: 0xffff }));
  const text = fc.string({ maxLength: 20 }).filter((s) => !s.startsWith('sleep:'));
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.record({ text, n: fc.nat() }).map((m) => EchoReq.encode(m)),
    fc.record({ code: fc.string({ maxLength: 12 }), message: fc.string({ maxLength: 12 }) }).map((m) => L.RpcError.encode(m)),
    fc.record({ reason: fc.string({ maxLength: 12 }) }).map((m) => L.RpcCancel.encode(m)),
    fc.record({ load: fc.double() }).map((m) => L.LoadReport.encode(m)),
    fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 60 }), { maxKeys: 4 }).map((fields) => L.TraceContext.encode({ fields })),
  );
  const frame = fc.record({ msgId, seq, body });
  const SENTINEL = 0x7ffffff0;
  let run = 0;
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 15 }), fc.boolean(), async (frames, oneWrite) => {
      const c = await RawLink.open(mesh.defer, mesh.port);
      try {
        await c.handshake(`fuzz#${run++}@dev`);
        const bytes = frames.map((f) => encodeFrame(f.msgId, f.seq, f.body));
        if (oneWrite) c.write(Buffer.concat(bytes));
        else for (const b of bytes) c.write(b);
        // A sentinel request: once it is answered (or the link is closed), the
        // service has dealt with everything sent before it.
        c.send(EchoReq.id, SENTINEL, EchoReq.encode({ text: 'sentinel', n: run }));
        const reply = await c.next((f) => f.seq === (SENTINEL | RESPONSE_BIT) >>> 0, 2000);
        if (reply) {
          answered++;
          assert.equal(reply.msgId, EchoResp.id, `the sentinel got ${reply.msgId === L.RpcError.id ? JSON.stringify(L.RpcError.decode(reply.body)) : `message ${reply.msgId}`}`);
          const res = EchoResp.decode(reply.body);
          assert.equal(res.text, 'sentinel');
          assert.equal(res.server, mesh.target.id);
        } else {
          assert.ok(c.isClosed, 'no answer only because the service dropped the link');
        }
      } finally {
        c.destroy();
      }
    }),
    { numRuns: 60, interruptAfterTimeLimit: 12_000 },
  );
  assert.ok(answered >= 10, `the service answered the sentinel on only ${answered} of ${run} links`);
  await mesh.finish();
});

test("a peer's responses and cancels cannot reach calls on another peer's link", async (t) => {
  const mesh = await startMesh(t);
  const c = await RawLink.open(mesh.defer, mesh.port);
  await c.handshake('fuzz#1@dev');

  // The target calls the good peer, and the good peer calls the target, both slowly.
  const outgoing = mesh.target.call('good', EchoReq, EchoResp, { text: 'sleep:400 outgoing' });
  const incoming = mesh.good.call('echo', EchoReq, EchoResp, { text: 'sleep:400 incoming' });
  await waitFor(() => mesh.goodStats.begun.includes('sleep:400 outgoing') && mesh.targetStats.begun.includes('sleep:400 incoming'), 2000, 'both slow calls to start');

  // Call ids are small counters: cover every id either node can have used
  // so far with forged responses and cancels.
  const top = Math.max(mesh.goodStats.calls, mesh.targetStats.calls) + 200;
  const forged: Buffer[] = [];
  const impostor = EchoResp.encode({ text: 'forged', server: 'impostor' });
  const error = L.RpcError.encode({ code: 'application', message: 'forged error' });
  const cancel = L.RpcCancel.encode({ reason: 'forged cancel' });
  for (let id = 1; id <= top; id++) {
    forged.push(encodeFrame(EchoResp.id, (id | RESPONSE_BIT) >>> 0, impostor));
    forged.push(encodeFrame(L.RpcError.id, (id | RESPONSE_BIT) >>> 0, error));
    forged.push(encodeFrame(L.RpcCancel.id, id, cancel));
  }
  c.write(Buffer.concat(forged));

  const [out, inc] = await within(Promise.all([outgoing, incoming]), 3000, 'the slow calls');
  assert.equal(out.server, mesh.good.id, "the target's call was answered by the good peer, not by a forged response");
  assert.equal(out.text, 'sleep:400 outgoing');
  assert.equal(inc.server, mesh.target.id);
  assert.equal(inc.text, 'sleep:400 incoming');
  assert.deepEqual(
    mesh.targetStats.aborted.map((a) => a.text),
    [],
    "forged cancels did not abort the good peer's calls",
  );
  c.destroy();
  await mesh.finish();
});

test('a fake acceptor without the secret is refused by the dialing service', async (t) => {
  const mesh = await startMesh(t);
  const hellos: string[] = [];
  const sockets = new Set<net.Socket>();
  let hungUp = 0;
  const fake = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('end', () => hungUp++);
    socket.once('close', () => sockets.delete(socket));
    socket.write(encodeFrame(L.LinkChallenge.id, 0, L.LinkChallenge.encode({ nonce: randomBytes(16), protocol: LINK_PROTOCOL })));
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 10 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const msgId = buf.readUInt16BE(4);
        const seq = buf.readUInt32BE(6);
        const body = buf.subarray(10, 4 + len);
        buf = buf.subarray(4 + len);
        if (msgId !== L.LinkHello.id) continue;
        const hello = L.LinkHello.decode(body);
        hellos.push(hello.id);
        // Without the secret the best a fake can do is a guess, or a proof under another secret.
        const proof = hellos.length % 2 === 0 ? randomBytes(32) : hmac('guessed', 'gamemesh-link-accept', hello.nonce, 'good#7@dev');
        socket.write(encodeFrame(L.LinkWelcome.id, seq, L.LinkWelcome.encode({ id: 'good#7@dev', name: 'good', addr: 7, proof, load: 0 })));
      }
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  mesh.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        fake.close(() => resolve());
      }),
  );
  const port = (fake.address() as net.AddressInfo).port;
  const registrar = await DiscoveryClient.connect({ addr: mesh.sdaddr, token: SECRET, connectTimeoutMs: 5000 });
  mesh.defer(() => registrar.close());
  await registrar.register({ name: 'good', id: 'good#7@dev', host: '127.0.0.1', port, meta: { group: 'dev', addr: '1.0.7' } });

  await waitFor(() => hellos.length >= 2, 5000, 'the target to dial the fake twice');
  assert.ok(hellos.every((id) => id === mesh.target.id));
  await waitFor(() => hungUp >= 2, 2000, 'the target to hang up on the fake');
  assert.deepEqual(
    mesh.target.instances('good').map((p) => p.id),
    [mesh.good.id],
    'the fake never became an instance',
  );
  assert.deepEqual(mesh.strangers, []);
  await mesh.finish();
});
