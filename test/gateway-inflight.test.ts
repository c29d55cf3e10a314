import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, GameClient } from '../src/client/index.js';
import { tcpTransport } from '../src/client-node/index.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { startGatewayMesh } from './helpers/gateway.js';
import { cleanupStack } from './helpers/mesh.js';

test('requests in flight when their backend goes down fail at once with unavailable, not at the timeout', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  const [host, port] = (mesh.agent.tcpAddress as string).split(':') as [string, string];
  const client = new GameClient({ transport: () => tcpTransport(host, Number(port)), reconnect: false, requestTimeoutMs: 10_000 });
  defer(() => client.close());
  await client.connect();
  assert.equal((await client.request(EchoReq, EchoResp, { text: 'warm' })).text, 'warm');

  // The backend sits on these; then its link to the agent goes away.
  const started = Date.now();
  const slow = [1, 2, 3].map(() => client.request(EchoReq, EchoResp, { text: 'sleep:5000' }).then(
    () => 'answered',
    (err: unknown) => (err instanceof ClientError ? `${err.code}: ${err.message}` : String(err)),
  ));
  await new Promise((r) => setTimeout(r, 200));
  await mesh.backendNode.stop();
  const outcomes = await Promise.all(slow);
  const took = Date.now() - started;
  for (const o of outcomes) assert.match(o, /^unavailable: echo \(echo#0@dev\) went down before answering$/);
  assert.ok(took < 3000, `failed after ${took} ms; the client's timeout is 10 s and the handler's sleep 5 s`);
  assert.equal(client.state, 'open', 'the client itself stays connected');
});

test('a backend stopping gracefully answers the client requests it holds, and refuses new ones', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  const [host, port] = (mesh.agent.tcpAddress as string).split(':') as [string, string];
  const client = new GameClient({ transport: () => tcpTransport(host, Number(port)), reconnect: false, requestTimeoutMs: 10_000 });
  defer(() => client.close());
  await client.connect();
  await client.request(EchoReq, EchoResp, { text: 'warm' });

  const held = client.request(EchoReq, EchoResp, { text: 'sleep:300' });
  await new Promise((r) => setTimeout(r, 50));
  const stopping = mesh.backendNode.stop();
  // Sent while the backend drains: refused at once, by the backend or by the agent.
  const late = await client.request(EchoReq, EchoResp, { text: 'late' }).then(
    () => 'answered',
    (err: unknown) => (err instanceof ClientError ? err.code : String(err)),
  );
  assert.equal((await held).text, 'sleep:300', 'the request in flight was answered before the backend closed');
  assert.equal(late, 'unavailable');
  await stopping;
});
