/**
 * The agent's fan-out, end to end in one process: a backend's broadcasts
 * reach WebSocket clients of a real agent as one shared frame (the same
 * bytes on every socket), and what one turn brings for a client leaves in
 * one socket write, in order.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { ClientMessages } from '../src/client/messages.js';
import { WS_HEADER_BYTES } from '../src/net/shared-frame.js';
import { EchoResp } from './helpers/echo.js';
import { startBackendMesh } from './helpers/backend-mesh.js';
import { cleanupStack } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

interface Got {
  msgId: number;
  seq: number;
  body: Buffer;
}

test('agent: broadcasts go to every WebSocket client as the same bytes, several in one turn in one write per client', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const { backend } = await mesh.startBackend(() => undefined);
  const url = mesh.agent.wsUrl as string;
  const inboxes: Got[][] = [];
  for (let i = 0; i < 3; i++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    defer(() => ws.terminate());
    const inbox: Got[] = [];
    ws.on('message', (d: Buffer) => inbox.push({ msgId: d.readUInt16BE(0), seq: d.readUInt32BE(2), body: Buffer.from(d.subarray(WS_HEADER_BYTES)) }));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const hs = ClientMessages.Handshake.encode({ version: 1, token: '', client: 'fanout-test' });
    const header = Buffer.alloc(WS_HEADER_BYTES);
    header.writeUInt16BE(ClientMessages.Handshake.id, 0);
    header.writeUInt32BE(1, 2);
    ws.send(Buffer.concat([header, hs]));
    await waitFor(() => inbox.some((m) => m.seq === 1), 5000, 'handshake ack');
    inboxes.push(inbox);
  }
  // The agent's side of each connection (test-only access to its listener's sessions).
  const sessions = [...(mesh.agent as unknown as { ws: { sessions: Set<{ socket: net.Socket }> } }).ws.sessions];
  assert.equal(sessions.length, 3);
  const writes = sessions.map((s) => {
    const seen: Buffer[] = [];
    const original = s.socket.write.bind(s.socket) as (chunk: Buffer, cb?: () => void) => boolean;
    s.socket.write = ((chunk: Buffer, cb?: () => void) => {
      seen.push(chunk);
      return original(chunk, cb);
    }) as typeof s.socket.write;
    return seen;
  });
  for (const inbox of inboxes) inbox.length = 0;

  backend.broadcast(EchoResp, { text: 'one', n: 1, server: '' });
  await waitFor(() => inboxes.every((i) => i.length === 1), 5000, 'the broadcast');
  const body = Buffer.from(EchoResp.encode({ text: 'one', n: 1, server: '' }));
  for (const inbox of inboxes) assert.deepEqual(inbox[0], { msgId: EchoResp.id, seq: 0, body });
  assert.ok(writes.every((w) => w.length === 1), `one write each: ${writes.map((w) => w.length).join(', ')}`);
  assert.ok(writes.every((w) => w[0] === writes[0]![0]), 'the same buffer on every socket');

  for (const w of writes) w.length = 0;
  for (const inbox of inboxes) inbox.length = 0;
  // Three broadcasts in one turn of the backend: one link write, one agent turn, one write per client.
  for (let n = 1; n <= 3; n++) backend.broadcast(EchoResp, { text: 'tick', n, server: '' });
  await waitFor(() => inboxes.every((i) => i.length === 3), 5000, 'three broadcasts');
  for (const inbox of inboxes) assert.deepEqual(inbox.map((m) => EchoResp.decode(m.body).n), [1, 2, 3], 'in order');
  assert.ok(writes.every((w) => w.length === 1), `one write per client for three messages: ${writes.map((w) => w.length).join(', ')}`);
});
