/**
 * Hostile input on the pomelo port, with fast-check. The decoders (package,
 * message, JSON by schema, pomelo-protobuf) either decode or throw their own
 * error, never anything else, for any bytes; on valid input they agree with
 * the peer's codec (pomelo-protocol). Over real sockets, generated garbage,
 * and well-formed packages with generated contents, close or refuse only the
 * connection that sent them: a well-behaved client on the same agent keeps
 * getting its answers, and the agent keeps accepting clients.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import Protocol from 'pomelo-protocol';
import { BodyError, encodeJsonBody } from '../src/gateway/pomelo/json.js';
import { decodeClientMessage, pushPackage, responsePackage } from '../src/gateway/pomelo/message.js';
import { PackageDecoder, PomeloProtocolError, type PackageTypeValue } from '../src/gateway/pomelo/package.js';
import { decodePomeloProtobuf } from '../src/gateway/pomelo/protobuf.js';
import { cleanupStack } from './helpers/mesh.js';
import { PomeloTestClient, type Json } from './helpers/pomelo-client.js';
import { pmRegistry, startPomeloMesh } from './helpers/pomelo-mesh.js';
import { waitFor } from './helpers/proc.js';

const { Package, Message } = Protocol;
const echoType = pmRegistry.root.lookupType('pmtest.EchoReq');

/** Splits bytes into chunks at the given cut points. */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

test('package decoder: any bytes in any split decode or throw PomeloProtocolError; valid streams match pomelo-protocol', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
      const got: number[] = [];
      const d = new PackageDecoder((type) => got.push(type), 128);
      try {
        for (const c of chunks(Buffer.from(bytes), cuts)) d.push(c);
      } catch (err) {
        assert.ok(err instanceof PomeloProtocolError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
  const pkg = fc.record({ type: fc.integer({ min: 1, max: 5 }), body: fc.uint8Array({ maxLength: 200 }) });
  fc.assert(
    fc.property(fc.array(pkg, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (pkgs, cuts) => {
      const stream = Buffer.concat(pkgs.map((p) => Package.encode(p.type, p.body.length ? p.body : null)));
      const got: Array<{ type: PackageTypeValue; body: string }> = [];
      const d = new PackageDecoder((type, body) => got.push({ type, body: body.toString('hex') }), 1 << 16);
      for (const c of chunks(stream, cuts)) d.push(c);
      assert.deepEqual(got, pkgs.map((p) => ({ type: p.type, body: Buffer.from(p.body).toString('hex') })));
      assert.ok(d.atBoundary);
    }),
    { numRuns: 500 },
  );
});

test('message decoder: any bytes decode or throw PomeloProtocolError; pomelo-protocol requests and notifies decode exactly', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      try {
        decodeClientMessage(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof PomeloProtocolError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
  const route = fc.oneof(fc.string({ minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    // pomelo-protocol's encoder sizes ids with a signed shift: it is right below 2^31 only.
    fc.property(fc.integer({ min: 0, max: 0x7fffffff }), route, fc.uint8Array({ maxLength: 64 }), (id, r, body) => {
      const bytes = Message.encode(id, id > 0 ? Message.TYPE_REQUEST : Message.TYPE_NOTIFY, typeof r === 'number', r, Buffer.from(body));
      const m = decodeClientMessage(bytes);
      assert.equal(m.id, id);
      assert.equal(m.route, r);
      assert.deepEqual([...m.body], [...body]);
    }),
    { numRuns: 1000 },
  );
});

test('our responses and pushes decode with pomelo-protocol', () => {
  fc.assert(
    // pomelo-protocol's decoder adds id groups with a 32-bit shift: it is right below 2^28 only (clients count from 1).
    fc.property(fc.integer({ min: 1, max: 0x0fffffff }), fc.oneof(fc.string({ maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 255), fc.integer({ min: 0, max: 0xffff })), fc.string({ maxLength: 100 }), (id, route, text) => {
      const res = Package.decode(responsePackage(id, text));
      assert.ok(!Array.isArray(res) && res.type === Package.TYPE_DATA);
      const r = Message.decode(res.body ?? Buffer.alloc(0));
      assert.deepEqual([r.type, r.id, Protocol.strdecode(r.body)], [Message.TYPE_RESPONSE, id, text]);
      const push = Package.decode(pushPackage(route, text));
      assert.ok(!Array.isArray(push));
      const p = Message.decode(push.body ?? Buffer.alloc(0));
      assert.deepEqual([p.type, p.compressRoute === 1, p.route === null ? '' : p.route, Protocol.strdecode(p.body)], [Message.TYPE_PUSH, typeof route === 'number', route, text]);
    }),
    { numRuns: 1000 },
  );
});

test('body conversion: any JSON value or bytes is a message or a BodyError, never another error', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      try {
        encodeJsonBody(echoType, value);
      } catch (err) {
        assert.ok(err instanceof BodyError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
  const field = fc.constantFrom('text', 'i32', 'u32', 'i64', 'u64', 'flag', 'd', 'f', 'color', 'at', 'path', 'nums', 'tags', 'sleep_ms');
  fc.assert(
    fc.property(fc.dictionary(field, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }), (value) => {
      try {
        encodeJsonBody(echoType, value);
      } catch (err) {
        assert.ok(err instanceof BodyError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      try {
        encodeJsonBody(echoType, decodePomeloProtobuf(echoType, bytes));
      } catch (err) {
        assert.ok(err instanceof BodyError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
});

test('over sockets: hostile connections are closed or refused, and only they are', { timeout: 60_000 }, async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer, { pomeloProtobuf: true, maxMsgsPerSec: 1_000_000, maxFrame: 4096 });
  const tcp = mesh.agent.pomeloTcpAddress as string;
  const good = await PomeloTestClient.connect(tcp);
  defer(() => good.destroy());
  await good.handshake();
  let n = 0;
  const check = async () => {
    const text = `good ${n++}`;
    const res = await good.request('pm.echo.echo', { text });
    assert.equal((res['echo'] as Json)['text'], text);
  };

  const handshake = Package.encode(Package.TYPE_HANDSHAKE, Protocol.strencode(JSON.stringify({ sys: { type: 'fuzz' }, user: {} })));
  const ack = Package.encode(Package.TYPE_HANDSHAKE_ACK);
  const routes = fc.constantFrom('pm.echo.echo', 'pm.echo.blob', 'pm.auth.secret', 'pm.admin.grant', 'pm.echo.push', 'no.such', '');
  const jsonBody = fc.jsonValue({ maxDepth: 4 }).map((v) => Protocol.strencode(JSON.stringify(v) ?? 'null'));
  const body = fc.oneof(jsonBody, fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)));
  const message = fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), routes, body).map(([id, r, b]) => Message.encode(id, id > 0 ? 0 : 1, false, r, b)),
    fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 0xffff }), body).map(([id, code, b]) => Message.encode(id, 0, true, code, b)),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  );
  const pkg = fc.oneof(
    message.map((m) => Package.encode(Package.TYPE_DATA, m)),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 30 })).map(([type, b]) => Buffer.concat([Buffer.from([type, 0, 0, b.length]), b])),
    fc.constant(Package.encode(Package.TYPE_HEARTBEAT)),
    fc.constant(handshake),
  );
  const script = fc.record({ greet: fc.boolean(), packages: fc.array(pkg, { minLength: 1, maxLength: 6 }), cuts: fc.array(fc.nat(), { maxLength: 4 }) });

  let runs = 0;
  let closed = 0;
  await fc.assert(
    fc.asyncProperty(script, async ({ greet, packages, cuts }) => {
      runs++;
      const bad = await PomeloTestClient.connect(tcp);
      try {
        if (greet) {
          bad.write(Buffer.concat([handshake, ack]));
          await waitFor(() => bad.handshakes.length > 0 || bad.isClosed, 3000, 'the handshake answer');
        }
        for (const c of chunks(Buffer.concat(packages), cuts)) bad.write(c);
        // Either the agent closes it or answers what it can; in both cases it is still serving the good client.
        await check();
        // What the agent does with the bad one has happened by the time the good one's answer is back.
        if (bad.isClosed) closed++;
      } finally {
        bad.destroy();
      }
      assert.equal(good.isClosed, false, 'the good client was closed');
    }),
    { numRuns: 150, interruptAfterTimeLimit: 30_000 },
  );
  t.diagnostic(`${runs} hostile connections, ${closed} closed by the agent`);
  assert.ok(runs >= 30, `only ${runs} runs`);
  assert.ok(closed > 0 && closed < runs, 'some broke the protocol and were closed; others were only refused');
  // A new client is still welcome.
  const late = await PomeloTestClient.connect(tcp);
  defer(() => late.destroy());
  assert.equal((await late.handshake()).code, 200);
  await check();
  assert.equal(mesh.calls.some((c) => c.name === 'GrantReq'), false, 'a blocked route never reached the backend');
});
