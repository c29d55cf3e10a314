/**
 * The client SDK's parts without an agent: its message types against the
 * Node registry's, the browser-safe frame codec against src/wire/frame.ts,
 * seq numbering, the heartbeat, GameClient against a scripted transport,
 * the WebSocket transport's protocol checks, and the rule that nothing
 * reachable from src/client needs Node.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { WebSocketServer } from 'ws';
import {
  CLIENT_DESCRIPTOR,
  ClientMessages as M,
  decodeWsFrame,
  encodeTcpFrame,
  encodeWsFrame,
  FrameError,
  GameClient,
  StreamFrameDecoder,
  wsTransportNode,
  type Transport,
} from '../src/client-node/index.js';
import { Heartbeat } from '../src/client/heartbeat.js';
import { PendingTable } from '../src/client/pending.js';
import { C } from '../src/gateway/messages.js';
import { encodeFrame } from '../src/wire/frame.js';
import { MessageRegistry } from '../src/wire/registry.js';
import { waitFor, within, ROOT } from './helpers/proc.js';

// ---- message types --------------------------------------------------------

const SAMPLES: Record<keyof typeof C, Record<string, unknown>> = {
  Handshake: { version: 1, token: 'eyJhbGciOi.jwt.sig-ü', client: 'web/1.0' },
  HandshakeAck: { version: 1, heartbeat_sec: 20, session_id: 'agent#3@dev/42', server_time_ms: 1_750_000_000_123 },
  Ping: {},
  Pong: { server_time_ms: 2 ** 53 - 1 },
  Kick: { code: 10, reason: 'slow consumer' },
  Error: { code: 'unauthenticated', message: 'login first' },
  BackendStatus: { service: 'game', id: 'game#1@dev', up: true },
};

test('client messages: same ids, fields and bytes as the Node registry loading client.proto', () => {
  const names = Object.keys(C) as Array<keyof typeof C>;
  assert.deepEqual(Object.keys(M).sort(), [...names].sort(), 'the same messages');
  const registry = new MessageRegistry().load('gamemesh/client.proto');
  const protoNames = registry.root.lookup('gamemesh.client')?.toJSON()['nested'] ?? {};
  assert.deepEqual(Object.keys(protoNames).sort(), Object.keys(CLIENT_DESCRIPTOR.nested.gamemesh.nested.client.nested).sort(), 'every message of client.proto is mirrored');
  for (const name of names) {
    const node = C[name];
    const browser = M[name];
    assert.equal(browser.id, node.id, `${name} id`);
    assert.equal(browser.name, node.name, `${name} name`);
    const protoFields = registry.root.lookupType(node.name).toJSON()['fields'];
    const jsonFields = CLIENT_DESCRIPTOR.nested.gamemesh.nested.client.nested[name].fields;
    assert.deepEqual(jsonFields, protoFields, `${name} fields`);
    for (const sample of [SAMPLES[name], {}]) {
      const a = (browser as { encode(m: Record<string, unknown>): Uint8Array }).encode(sample);
      const b = (node as { encode(m: Record<string, unknown>): Uint8Array }).encode(sample);
      assert.deepEqual(Buffer.from(a), Buffer.from(b), `${name} encodes alike: ${JSON.stringify(sample)}`);
      assert.deepEqual({ ...browser.decode(b) }, { ...node.decode(a) }, `${name} decodes alike`);
    }
  }
});

// ---- frames -----------------------------------------------------------------

test('frames: TCP and WebSocket encoding match the Node codec; the stream decoder takes any split', () => {
  const frames = [
    { msgId: 301, seq: 1, body: new Uint8Array([1, 2, 3]) },
    { msgId: 0, seq: 0, body: new Uint8Array(0) },
    { msgId: 0xffff, seq: 0xffffffff, body: new Uint8Array(300).map((_, i) => i & 0xff) },
    { msgId: 1001, seq: 7, body: new Uint8Array([9]) },
  ];
  for (const f of frames) {
    assert.deepEqual(Buffer.from(encodeTcpFrame(f.msgId, f.seq, f.body)), encodeFrame(f.msgId, f.seq, f.body));
    assert.deepEqual(Buffer.from(encodeWsFrame(f.msgId, f.seq, f.body)), encodeFrame(f.msgId, f.seq, f.body).subarray(4));
    const back = decodeWsFrame(encodeWsFrame(f.msgId, f.seq, f.body));
    assert.deepEqual({ ...back, body: [...back.body] }, { ...f, body: [...f.body] });
  }
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f.msgId, f.seq, f.body)));
  const expected = frames.map((f) => `${f.msgId}/${f.seq}/${[...f.body].join(',')}`);
  // Two cuts at every pair of positions (a step keeps it quick), and byte by byte.
  for (let i = 0; i <= stream.length; i += 7) {
    for (let j = i; j <= stream.length; j += 13) {
      const got: string[] = [];
      const d = new StreamFrameDecoder((msgId, seq, body) => got.push(`${msgId}/${seq}/${[...body].join(',')}`));
      for (const part of [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]) d.push(new Uint8Array(part));
      assert.deepEqual(got, expected, `cut at ${i}, ${j}`);
      assert.equal(d.buffered, 0);
    }
  }
  const got: string[] = [];
  const d = new StreamFrameDecoder((msgId, seq, body) => got.push(`${msgId}/${seq}/${[...body].join(',')}`));
  for (const byte of stream) d.push(new Uint8Array([byte]));
  assert.deepEqual(got, expected);
});

test('frames: an oversized length fails on its first four bytes, a length under 6 fails, a short WS message fails', () => {
  const d = new StreamFrameDecoder(() => assert.fail('no frame'), 1000);
  assert.throws(() => d.push(new Uint8Array([0, 0, 0x03, 0xe9])), FrameError, '1001 > 1000, before any body');
  assert.throws(() => d.push(new Uint8Array([0])), /already failed/);
  assert.throws(() => new StreamFrameDecoder(() => undefined).push(new Uint8Array([0, 0, 0, 5, 0, 0, 0, 0, 0])), /below/);
  assert.throws(() => decodeWsFrame(new Uint8Array(5)), FrameError);
  // Exactly at the limit is fine.
  const ok = new StreamFrameDecoder(() => undefined, 1000);
  ok.push(encodeTcpFrame(5, 1, new Uint8Array(994)));
});

// ---- seq numbers and heartbeat -----------------------------------------------

test('seq numbers run 1, 2, 3, ..., wrap past 2^32-1 to 1 (never 0), and skip seqs in flight', async () => {
  const p = new PendingTable();
  assert.deepEqual([p.nextSeq(), p.nextSeq(), p.nextSeq()], [1, 2, 3]);
  const held = p.expect(1, 10_000, 'held');
  (p as unknown as { last: number }).last = 0xfffffffe;
  assert.equal(p.nextSeq(), 0xffffffff);
  assert.equal(p.nextSeq(), 2, 'wraps to 1, which is in flight, so 2');
  assert.equal(p.settle(1, { msgId: 1, body: new Uint8Array(0) }), true);
  assert.equal((await held).msgId, 1);
  assert.equal(p.settle(1, { msgId: 1, body: new Uint8Array(0) }), false, 'a late answer finds nobody');
  await assert.rejects(p.expect(9, 10, 'quick'), { code: 'timeout' });
  assert.equal(p.size, 0);
});

test('heartbeat: pings every period, declares the connection dead after 2 periods + 1 s of silence', async () => {
  let pings = 0;
  let deadAfter = 0;
  const hb = new Heartbeat(
    () => pings++,
    (ms) => (deadAfter = ms),
  );
  const t0 = performance.now();
  hb.start(0.05);
  await waitFor(() => pings >= 3, 1000, 'pings');
  hb.heard();
  await waitFor(() => deadAfter > 0, 2000, 'dead');
  assert.ok(deadAfter > 1100, `silent for ${deadAfter} ms`);
  assert.ok(performance.now() - t0 >= 1100);
  const pingsAtDeath = pings;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(pings, pingsAtDeath, 'stopped after declaring death');
  hb.stop();
});

// ---- GameClient against a scripted agent -----------------------------------

interface Frame {
  msgId: number;
  seq: number;
  body: Uint8Array;
}

/** An in-memory transport; `agent` sees every frame the client sends and may answer through `push`. */
class FakeTransport implements Transport {
  onFrame: ((msgId: number, seq: number, body: Uint8Array) => void) | undefined;
  onClose: ((reason: string) => void) | undefined;
  readonly sent: Frame[] = [];
  private closed = false;

  constructor(private readonly agent: (t: FakeTransport, f: Frame) => void) {}

  async connect(): Promise<void> {}

  send(msgId: number, seq: number, body: Uint8Array): void {
    if (this.closed) return;
    const f = { msgId, seq, body };
    this.sent.push(f);
    queueMicrotask(() => this.agent(this, f));
  }

  push(msgId: number, seq: number, body: Uint8Array): void {
    if (!this.closed) this.onFrame?.(msgId, seq, body);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.('closed by the client');
  }
}

/** Answers Handshake (heartbeat_sec as given) and, while `answerPings`, Ping. */
function scriptedAgent(heartbeatSec: number, state = { answerPings: true }) {
  return (t: FakeTransport, f: Frame) => {
    if (f.msgId === M.Handshake.id) t.push(M.HandshakeAck.id, f.seq, M.HandshakeAck.encode({ version: 1, heartbeat_sec: heartbeatSec, session_id: 'fake/1', server_time_ms: Date.now() }));
    if (f.msgId === M.Ping.id && state.answerPings) t.push(M.Pong.id, f.seq, M.Pong.encode({ server_time_ms: Date.now() }));
  };
}

test('GameClient follows a new heartbeat period announced by a HandshakeAck with seq 0', async (t) => {
  let transport: FakeTransport | undefined;
  const client = new GameClient({ transport: () => (transport = new FakeTransport(scriptedAgent(60))), reconnect: false });
  t.after(() => client.close());
  const info = await client.connect();
  assert.equal(info.heartbeatSec, 60);
  const ft = transport as FakeTransport;
  assert.equal(ft.sent[0]?.msgId, M.Handshake.id);
  assert.notEqual(ft.sent[0]?.seq, 0, 'the handshake is a request too');
  const hs = M.Handshake.decode(ft.sent[0]?.body ?? new Uint8Array(0));
  assert.equal(hs.version, 1);
  assert.equal(hs.client, 'gamemesh-js');

  ft.push(M.HandshakeAck.id, 0, M.HandshakeAck.encode({ version: 1, heartbeat_sec: 1, session_id: '', server_time_ms: Date.now() }));
  assert.equal(client.info?.heartbeatSec, 1);
  assert.equal(client.info?.sessionId, 'fake/1', 'the session is unchanged');
  const t0 = performance.now();
  await waitFor(() => ft.sent.some((f) => f.msgId === M.Ping.id), 2000, 'a Ping at the new period');
  assert.ok(performance.now() - t0 < 1500);
  const ping = ft.sent.find((f) => f.msgId === M.Ping.id);
  assert.ok(ping && ping.seq > 0, 'pings carry a seq for their Pong');
});

test('GameClient: a Kick during the handshake (alone, or in the same read as the HandshakeAck) rejects connect() with kicked', async () => {
  const kick = M.Kick.encode({ code: 7, reason: 'unsupported version' });
  for (const withAck of [false, true]) {
    const kicks: number[] = [];
    const client = new GameClient({
      transport: () =>
        new FakeTransport((t, f) => {
          if (withAck) scriptedAgent(5)(t, f);
          t.push(M.Kick.id, 0, kick);
        }),
    });
    client.onKick((k) => kicks.push(k.code));
    await assert.rejects(client.connect(), { code: 'kicked', message: /\(7\): unsupported version/ });
    assert.equal(client.state, 'closed');
    assert.deepEqual(kicks, [7]);
  }
});

test('GameClient: a listener that throws goes to onError and the others still run; unknown pushes are ignored', async (t) => {
  let transport: FakeTransport | undefined;
  const errors: string[] = [];
  const client = new GameClient({ transport: () => (transport = new FakeTransport(scriptedAgent(60))), reconnect: false, onError: (err, where) => errors.push(`${where}: ${(err as Error).message}`) });
  t.after(() => client.close());
  await client.connect();
  const ft = transport as FakeTransport;
  const seen: boolean[] = [];
  client.onBackendStatus(() => {
    throw new Error('listener bug');
  });
  client.onBackendStatus((s) => seen.push(s.up));
  ft.push(M.BackendStatus.id, 0, M.BackendStatus.encode({ service: 'game', id: 'game#0@dev', up: false }));
  ft.push(4321, 0, new Uint8Array([1, 2]));
  assert.deepEqual(seen, [false]);
  assert.deepEqual(errors, ['backendStatus: listener bug']);
  assert.equal(client.state, 'open');
});

test('GameClient: a dead connection (no Pong) is detected by the heartbeat and reconnected', async (t) => {
  const agentState = { answerPings: false };
  let made = 0;
  const client = new GameClient({
    transport: () => {
      made++;
      return new FakeTransport(scriptedAgent(1, made === 1 ? agentState : { answerPings: true }));
    },
    reconnect: { retries: 3, minDelayMs: 10, maxDelayMs: 20 },
  });
  t.after(() => client.close());
  const reasons: string[] = [];
  client.onReconnecting((info) => reasons.push(info.reason));
  await client.connect();
  const inFlight = assert.rejects(client.ping({ timeoutMs: 10_000 }), { code: 'closed', message: /heartbeat timeout/ });
  await within(new Promise((resolve) => client.onReconnected(resolve)), 5000, 'reconnected');
  assert.match(reasons[0] ?? '', /heartbeat timeout/);
  await inFlight;
  assert.equal(made, 2);
  assert.ok((await client.ping()) >= 0);
});

// ---- the WebSocket transport's protocol checks --------------------------------

test('wsTransport: a text message or one shorter than 6 bytes closes the connection', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.after(() => new Promise<void>((done) => wss.close(() => done())));
  await new Promise((r) => wss.once('listening', r));
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  for (const [bad, why] of [['hello', /text messages/], [Buffer.from([0, 1, 0]), /shorter than the 6-byte header/]] as const) {
    wss.once('connection', (ws) => {
      ws.send(Buffer.from(encodeWsFrame(1001, 0, new Uint8Array([7]))));
      ws.send(bad);
    });
    const tr = wsTransportNode(url);
    const frames: number[] = [];
    tr.onFrame = (msgId) => frames.push(msgId);
    const closed = new Promise<string>((resolve) => (tr.onClose = resolve));
    await tr.connect();
    assert.match(await within(closed, 2000, 'close'), why);
    assert.deepEqual(frames, [1001]);
  }
});

// ---- browser safety ----------------------------------------------------------

const FORBIDDEN_DIRS = ['src/net/', 'src/service/', 'src/discovery/', 'src/log/', 'src/client-node/'].map((d) => path.join(ROOT, d));
const FORBIDDEN_FILES = [path.join(ROOT, 'src/wire/registry.ts'), path.join(ROOT, 'src/wire/frame.ts')];
const ALLOWED_PACKAGES = new Set(['protobufjs']);
/** Node globals that do not exist in pages. */
const NODE_GLOBALS = new Set(['Buffer', 'process', 'require', 'module', '__dirname', '__filename', 'setImmediate', 'clearImmediate', 'global', 'NodeJS']);
const NODE_BUILTINS = new Set(builtinModules);

/** Problems in one source file, and the relative files it imports. */
function inspect(file: string, text: string): { problems: string[]; imports: string[] } {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const problems: string[] = [];
  const imports: string[] = [];
  const where = (n: ts.Node) => `${path.relative(ROOT, file)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  const checkSpecifier = (spec: string, n: ts.Node) => {
    if (spec.startsWith('.')) {
      const resolved = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
      if (FORBIDDEN_DIRS.some((d) => resolved.startsWith(d)) || FORBIDDEN_FILES.includes(resolved)) problems.push(`${where(n)} imports Node-only ${path.relative(ROOT, resolved)}`);
      else imports.push(resolved);
    } else if (spec.startsWith('node:') || NODE_BUILTINS.has(spec)) problems.push(`${where(n)} imports Node module ${spec}`);
    else if (!ALLOWED_PACKAGES.has(spec)) problems.push(`${where(n)} imports package ${spec} (allowed: ${[...ALLOWED_PACKAGES].join(', ')})`);
  };
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) checkSpecifier(n.moduleSpecifier.text, n);
    if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = n.arguments[0];
      if (arg && ts.isStringLiteral(arg)) checkSpecifier(arg.text, n);
      else problems.push(`${where(n)} has a dynamic import that cannot be checked`);
    }
    if (ts.isIdentifier(n) && NODE_GLOBALS.has(n.text)) {
      const p = n.parent;
      // `x.process` or `{ process: 1 }` name a property, not the global.
      const isPropertyName = (ts.isPropertyAccessExpression(p) && p.name === n) || ((ts.isPropertyAssignment(p) || ts.isPropertySignature(p) || ts.isPropertyDeclaration(p) || ts.isMethodDeclaration(p)) && p.name === n);
      if (!isPropertyName) problems.push(`${where(n)} uses the Node global ${n.text}`);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { problems, imports };
}

test('browser safety: nothing reachable from src/client imports Node modules, ws, Node-only gamemesh code or Node globals', () => {
  // The checker itself catches what it should.
  const bad = inspect(path.join(ROOT, 'src/client/x.ts'), "import net from 'node:net';\nimport { WebSocket } from 'ws';\nimport '../net/tcp.js';\nconst b = Buffer.from('x');\nlet t: NodeJS.Timeout;\nexport { x } from '../wire/registry.js';\nconst ok = { process: 1 }.process;");
  assert.equal(bad.problems.length, 6, bad.problems.join('\n'));

  const clientDir = path.join(ROOT, 'src', 'client');
  const queue = readdirSync(clientDir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(clientDir, f));
  const seen = new Set<string>();
  const problems: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const r = inspect(file, readFileSync(file, 'utf8'));
    problems.push(...r.problems);
    queue.push(...r.imports);
  }
  assert.deepEqual(problems, []);
  const reached = [...seen].map((f) => path.relative(ROOT, f));
  for (const f of ['src/client/index.ts', 'src/client/client.ts', 'src/client/ws-transport.ts', 'src/wire/message-type.ts']) assert.ok(reached.includes(f), `${f} was checked`);
});
