/**
 * Without an OpenTelemetry SDK (this test file registers none), tracing
 * costs nothing on the wire: calls, one-way sends, client messages through
 * an agent and hub publishes write no TraceContext frame at all, and one
 * that arrives anyway is not even decoded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { tcpTransport } from '../src/client-node/index.js';
import { GameClient } from '../src/client/index.js';
import { Hub } from '../src/hub/client.js';
import { startHub } from '../src/hub/server.js';
import { tracingOn } from '../src/observe/tracing.js';
import { L } from '../src/service/messages.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { startGatewayMesh } from './helpers/gateway.js';
import { cleanupStack, startNode } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

test('no SDK: no span work and no TraceContext frame on any path', async (t) => {
  assert.equal(tracingOn(), false);
  let encoded = 0;
  let decoded = 0;
  const { encode, decode } = L.TraceContext;
  L.TraceContext.encode = (m) => (encoded++, encode(m));
  L.TraceContext.decode = (b) => (decoded++, decode(b));
  t.after(() => {
    L.TraceContext.encode = encode;
    L.TraceContext.decode = decode;
  });
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  // The mesh's nodes have no cluster secret; the hub must match.
  await startNode(defer, mesh.sdaddr, { name: 'hub', type: 2, config: { token: '' } }, (n) => void startHub(n));
  const hub = new Hub(mesh.backendNode);
  let delivered = 0;
  hub.subscribe('chan', EchoReq, () => void delivered++);
  await hub.whenSynced();

  // A client request through the agent, inside an (API-only, non-recording) span.
  const [host, port] = (mesh.agent.tcpAddress ?? '').split(':');
  const client = new GameClient({ transport: () => tcpTransport(host as string, Number(port)), reconnect: false, requestTimeoutMs: 3000 });
  defer(() => client.close());
  await client.connect();
  await trace.getTracer('t').startActiveSpan('x', async (span) => {
    assert.equal((await client.request(EchoReq, EchoResp, { text: 'hi', n: 1 })).text, 'hi');
    assert.ok(hub.publish('chan', EchoReq, { text: 'pub', n: 1 }));
    span.end();
  });
  await waitFor(() => delivered === 1, 3000, 'the hub delivery');
  // RPC and one-way between nodes.
  assert.equal((await mesh.backendNode.call({ id: mesh.agent.node.id }, EchoReq, EchoResp, { text: 'x', n: 1 }).catch((e: Error) => ({ text: e.name }))).text, 'RpcError');
  assert.equal(encoded, 0, 'no TraceContext frame was written');
  // One sent by hand is dropped unread.
  assert.ok(mesh.backendNode.sendToPeer(mesh.agent.node.id, L.TraceContext, { fields: { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` } }));
  assert.equal(encoded, 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(decoded, 0, 'a process that does not trace does not decode it');
});
