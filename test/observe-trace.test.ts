/**
 * OpenTelemetry across processes: an agent, a gateway backend ("front")
 * and the service it calls ("store"), each its own process with the Node
 * SDK and the SDK's in-memory exporter preloaded (test/fixtures/otel-preload.ts,
 * which writes the finished spans to a file per process). One client
 * request must come out as one trace: the agent's span, the backend's spans
 * under it (the link's consumer span and the handler's), the backend's RPC
 * client span, and the store's server span, each the child of the one
 * before, with the method, service ids, peers and result codes on them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { MessageRegistry } from '../src/wire/registry.js';
import { C } from '../src/gateway/messages.js';
import { BIN, FIXTURES, Proc, startDiscovery, tempDir, waitFor, type Cleanup } from './helpers/proc.js';
import { pushRoutes, RawTcpClient } from './helpers/gateway.js';
import { ROOT } from './helpers/proc.js';

interface SpanLine {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, unknown>;
  status: number;
  pid: number;
}

const reg = new MessageRegistry().load(path.join(ROOT, 'examples', 'echo', 'echo.proto'));
const EchoReq = reg.type<{ text: string; n: number }>('echo.EchoReq');
const EchoResp = reg.type<{ text: string; n: number; server: string }>('echo.EchoResp');
const PRELOAD = pathToFileURL(path.join(FIXTURES, 'otel-preload.js')).href;
// SpanKind numbers of the API.
const SERVER = 1;
const CLIENT = 2;
const CONSUMER = 4;

function readSpans(file: string): SpanLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as SpanLine);
}

function traced(t: Cleanup, label: string, spans: string, args: string[]): Proc {
  const proc = new Proc(label, process.execPath, ['--import', PRELOAD, ...args], { ...process.env, GAMEMESH_TEST_SPANS: spans });
  t.after(() => proc.stop());
  return proc;
}

test('one client request is one trace across agent, backend and the service it calls', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t, 'gamemesh-trace-');
  const sd = await startDiscovery(t);
  await pushRoutes(sd.addr, dir, { version: 1, routes: [{ msgId: EchoReq.id, name: 'echo.EchoReq', service: 'front', rule: 'pass' }] });
  const files = { store: path.join(dir, 'store.jsonl'), front: path.join(dir, 'front.jsonl'), agent: path.join(dir, 'agent.jsonl') };
  const common = ['--sdaddr', sd.addr, '--loglevel', 'warn'];
  const store = traced(t, 'store', files.store, [path.join(FIXTURES, 'trace-service.js'), '--role', 'store', ...common]);
  await store.waitForStdout(/trace-service (\S+) ready\n/, 30_000);
  const front = traced(t, 'front', files.front, [path.join(FIXTURES, 'trace-service.js'), '--role', 'front', ...common]);
  await front.waitForStdout(/trace-service (\S+) ready\n/, 30_000);
  const agent = traced(t, 'agent', files.agent, [BIN, 'agent', ...common, '--ws-port', '-1']);
  // Generous: three processes load the SDK at once on a machine that may be busy.
  const m = await agent.waitForStdout(/agent (\S+) listening tcp=(\S+):(\d+)/, 30_000);

  const client = await RawTcpClient.connect(m[2] as string, Number(m[3]));
  t.after(() => client.destroy());
  await client.handshake();
  // The agent learns the route and links to front from discovery: retry until the request goes through.
  let seq = 10;
  let answer: { text: string; n: number; server: string } | undefined;
  await waitFor(
    async () => {
      seq++;
      client.send(EchoReq.id, seq, EchoReq.encode({ text: 'hello', n: 1 }));
      const f = await client.waitFrame((f) => f.seq === seq, 3000, `answer to ${seq}`);
      if (f.msgId !== EchoResp.id) return false;
      answer = EchoResp.decode(f.body);
      return true;
    },
    15_000,
    'a request through agent -> front -> store',
    100,
  );
  assert.equal(answer?.text, 'hello');
  assert.equal(answer?.n, 2, 'front added 1 before calling store');
  assert.match(answer?.server ?? '', /^store#/);

  // And one the store fails: the codes on the spans say so.
  client.send(EchoReq.id, ++seq, EchoReq.encode({ text: 'fail', n: 1 }));
  const failed = await client.waitFrame((f) => f.seq === seq, 5000, 'the failing request');
  assert.equal(failed.msgId, C.Error.id);

  const spansOf = () => [...readSpans(files.agent), ...readSpans(files.front), ...readSpans(files.store)];
  let trace: SpanLine[] = [];
  let failTrace: SpanLine[] = [];
  await waitFor(
    () => {
      const all = spansOf();
      const roots = all.filter((x) => x.name === 'agent echo.EchoReq');
      const okRoot = roots.filter((r) => r.attributes['gamemesh.code'] === 'ok').at(-1);
      const failRoot = roots.find((r) => r.attributes['gamemesh.code'] === 'application');
      if (!okRoot || !failRoot) return false;
      trace = all.filter((x) => x.traceId === okRoot.traceId);
      failTrace = all.filter((x) => x.traceId === failRoot.traceId);
      return trace.length >= 5 && failTrace.length >= 5;
    },
    10_000,
    'the spans of both requests in the span files',
  );

  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const one = (pred: (s: SpanLine) => boolean, what: string): SpanLine => {
    const found = trace.filter(pred);
    assert.equal(found.length, 1, `${what}: ${JSON.stringify(trace.map((s) => [s.name, s.kind, s.pid]))}`);
    return found[0] as SpanLine;
  };
  const agentSpan = one((s) => s.name === 'agent echo.EchoReq', 'the agent span');
  const consumer = one((s) => s.name === 'gamemesh.gateway.ClientMessage', 'the backend link span');
  const handler = one((s) => s.name === 'echo.EchoReq' && s.kind === SERVER && s.pid === front.pid, 'the backend handler span');
  const call = one((s) => s.name === 'echo.EchoReq' && s.kind === CLIENT, 'the RPC client span');
  const served = one((s) => s.name === 'echo.EchoReq' && s.kind === SERVER && s.pid === store.pid, 'the RPC server span');

  // One trace, parented hop by hop, each span in the process that did the work.
  assert.equal(agentSpan.parentSpanId, '', 'the agent span is the root');
  assert.equal(agentSpan.kind, SERVER);
  assert.equal(agentSpan.pid, agent.pid);
  assert.equal(consumer.parentSpanId, agentSpan.spanId);
  assert.equal(consumer.kind, CONSUMER);
  assert.equal(consumer.pid, front.pid);
  assert.equal(handler.parentSpanId, consumer.spanId);
  assert.equal(call.parentSpanId, handler.spanId);
  assert.equal(call.pid, front.pid);
  assert.equal(served.parentSpanId, call.spanId);
  for (const s of trace) assert.ok(s.parentSpanId === '' || byId.has(s.parentSpanId), `${s.name}'s parent is in the trace`);

  // Attributes: method, message name, service id, peer, result code.
  assert.equal(agentSpan.attributes['gamemesh.msg'], 'echo.EchoReq');
  assert.equal(agentSpan.attributes['gamemesh.msg_id'], EchoReq.id);
  assert.match(String(agentSpan.attributes['gamemesh.service.id']), /^agent#0@dev$/);
  assert.match(String(agentSpan.attributes['gamemesh.peer']), /^front#0@dev$/);
  assert.equal(agentSpan.attributes['gamemesh.transport'], 'tcp');
  for (const s of [agentSpan, consumer, handler, call, served]) {
    assert.equal(s.attributes['gamemesh.code'], 'ok', `${s.name} code`);
    assert.equal(s.attributes['rpc.system'], 'gamemesh');
  }
  assert.equal(call.attributes['rpc.method'], 'echo.EchoReq');
  assert.match(String(call.attributes['gamemesh.service.id']), /^front#0@dev$/);
  assert.match(String(call.attributes['gamemesh.peer']), /^store#0@dev$/);
  assert.match(String(served.attributes['gamemesh.service.id']), /^store#0@dev$/);
  assert.match(String(served.attributes['gamemesh.peer']), /^front#0@dev$/);

  // The failed request: its own trace, and the error code at every hop.
  assert.notEqual(failTrace[0]?.traceId, agentSpan.traceId);
  const codes = (pred: (s: SpanLine) => boolean) => failTrace.filter(pred).map((s) => s.attributes['gamemesh.code']);
  assert.deepEqual(codes((s) => s.pid === store.pid && s.kind === SERVER), ['application']);
  assert.deepEqual(codes((s) => s.kind === CLIENT), ['application']);
  assert.deepEqual(codes((s) => s.name === 'agent echo.EchoReq'), ['application']);
  assert.ok(failTrace.filter((s) => s.attributes['gamemesh.code'] !== 'ok').every((s) => s.status === 2), 'error spans have the ERROR status');

  // Every request is its own trace: the retries before the route was known made traces of their own too.
  const roots = spansOf().filter((s) => s.parentSpanId === '');
  assert.equal(new Set(roots.map((s) => s.traceId)).size, roots.length, 'one root per trace');
});
