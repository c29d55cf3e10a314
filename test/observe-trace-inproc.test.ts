/**
 * Tracing inside one process, with the Node SDK and its in-memory exporter
 * registered for this test file only: hub publish and delivery continue the
 * publisher's trace through the hub; node.send carries the context; an RPC
 * outside any span starts a trace at the caller; and hostile TraceContext
 * frames (garbage, too many fields, oversized values) are ignored while the
 * link carries on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace, type SpanContext } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Hub } from '../src/hub/client.js';
import { startHub } from '../src/hub/server.js';
import { tracingOn } from '../src/observe/tracing.js';
import { L } from '../src/service/messages.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

const exporter = new InMemorySpanExporter();
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
const tracer = trace.getTracer('test');

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId ?? '';

test('hub publish and delivery continue the publisher\'s trace', async (t) => {
  assert.equal(tracingOn(), true);
  exporter.reset();
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  await startNode(defer, addr, { name: 'hub', type: 2 }, (n) => void startHub(n));
  const pubNode = await startNode(defer, addr, { name: 'pub' });
  const subNode = await startNode(defer, addr, { name: 'sub' });
  const pub = new Hub(pubNode);
  const sub = new Hub(subNode);
  const seen: Array<SpanContext | undefined> = [];
  sub.subscribe('room-1', EchoReq, () => void seen.push(trace.getActiveSpan()?.spanContext()));
  await Promise.all([pub.whenSynced(), sub.whenSynced()]);

  const root = tracer.startActiveSpan('player action', (span) => {
    assert.ok(pub.publish('room-1', EchoReq, { text: 'hi', n: 1 }));
    span.end();
    return span.spanContext();
  });
  await waitFor(() => seen.length === 1 && spans('gamemesh.hub.Deliver').length === 1, 5000, 'the delivery and its span');
  const [relay] = spans('gamemesh.hub.Publish');
  const [deliver] = spans('gamemesh.hub.Deliver');
  assert.ok(relay && deliver);
  assert.equal(relay.spanContext().traceId, root.traceId);
  assert.equal(parentOf(relay), root.spanId, 'the hub relay is a child of the publisher\'s span');
  assert.equal(relay.attributes['messaging.destination.name'], 'room-1');
  assert.match(String(relay.attributes['gamemesh.peer']), /^pub#0@/);
  assert.equal(parentOf(deliver), relay.spanContext().spanId, 'the delivery is a child of the relay');
  assert.equal(deliver.spanContext().traceId, root.traceId);
  assert.equal(seen[0]?.spanId, deliver.spanContext().spanId, 'the subscriber\'s handler runs inside the delivery span');
});

test('node.send carries the context; calls outside a span start a trace; hostile TraceContext frames are ignored', async (t) => {
  exporter.reset();
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const seen: Array<SpanContext | undefined> = [];
  const b = await startNode(defer, addr, { name: 'b' }, (n) => {
    n.onMessage(EchoReq, () => void seen.push(trace.getActiveSpan()?.spanContext()));
    n.handle(EchoResp, EchoResp, (req) => ({ text: req.text, server: n.id }));
  });
  const a = await startNode(defer, addr, { name: 'a', dependencies: ['b'] });
  await a.whenReady();

  // One-way, inside a span: the receiver's span is its child.
  const root = await tracer.startActiveSpan('tick', async (span) => {
    await a.send('b', EchoReq, { text: 'one-way', n: 1 });
    span.end();
    return span.spanContext();
  });
  await waitFor(() => seen.length === 1, 3000, 'the one-way message');
  const [consumer] = spans('echo.EchoReq');
  assert.ok(consumer);
  assert.equal(consumer.spanContext().traceId, root.traceId);
  assert.equal(parentOf(consumer), root.spanId);
  assert.equal(seen[0]?.spanId, consumer.spanContext().spanId);

  // A call outside any span: a root CLIENT span at the caller, the SERVER span its child.
  exporter.reset();
  await a.call('b', EchoResp, EchoResp, { text: 'call' });
  await waitFor(() => spans('echo.EchoResp').length === 2, 3000, 'both spans of the call');
  const client = spans('echo.EchoResp').find((s) => parentOf(s) === '');
  const server = spans('echo.EchoResp').find((s) => parentOf(s) !== '');
  assert.ok(client && server);
  assert.equal(parentOf(server), client.spanContext().spanId);

  // Hostile TraceContext frames before one-way messages: each message gets no span (no valid parent), nothing breaks.
  exporter.reset();
  const hostile: Array<Record<string, string>> = [
    { traceparent: 'garbage' },
    { traceparent: '00-00000000000000000000000000000000-0000000000000000-01' },
    Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'])),
    { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, tracestate: 'x'.repeat(10_000) },
    {},
  ];
  for (const fields of hostile) {
    assert.ok(a.sendToPeer(b.id, L.TraceContext, { fields }));
    assert.ok(a.sendToPeer(b.id, EchoReq, { text: 'after hostile', n: 2 }));
  }
  // Undecodable bytes as a TraceContext body.
  assert.ok(a.sendToPeer(b.id, { ...L.TraceContext, encode: () => Buffer.from([0xff, 0xff, 0xff]) } as unknown as typeof L.TraceContext, { fields: {} }));
  assert.ok(a.sendToPeer(b.id, EchoReq, { text: 'after garbage', n: 3 }));
  await waitFor(() => seen.length === 1 + hostile.length + 1, 3000, 'every message after a hostile frame');
  assert.deepEqual(seen.slice(1), new Array(hostile.length + 1).fill(undefined), 'no message ran under a forged or broken context');
  assert.equal(spans('echo.EchoReq').length, 0);
  // And the link still answers calls.
  assert.equal((await a.call('b', EchoResp, EchoResp, { text: 'still fine' })).text, 'still fine');
});
