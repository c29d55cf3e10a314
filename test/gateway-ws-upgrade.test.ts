/**
 * The agent's handshake deadline covers the WebSocket upgrade too: raw
 * sockets that send half an HTTP upgrade (and nothing more) are closed by
 * the deadline, they count toward the client cap meanwhile (so a flood of
 * them holds a bounded number of sockets), and the deadline runs from the
 * TCP accept, not from the end of a slow upgrade.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { GameClient } from '../src/client/index.js';
import { wsTransportNode } from '../src/client-node/index.js';
import { Agent } from '../src/gateway/agent.js';
import { RouteTable } from '../src/gateway/routes.js';
import { cleanupStack, silent, startDiscoveryServer } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

// Wide enough apart that a loaded machine's late timers cannot blur "at once", "at the deadline" and "after it".
const DEADLINE_MS = 1500;
const SLOW_DEADLINE_MS = 3000;
const MAX_CLIENTS = 100;

interface Probe {
  readonly socket: net.Socket;
  readonly openedAt: number;
  closedAt: number | undefined;
  received: string;
  /** When the agent's Kick for a missing Handshake arrived. */
  kickedAt: number | undefined;
}

function probe(port: number, first: string): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const p: Probe = { socket, openedAt: 0, closedAt: undefined, received: '', kickedAt: undefined };
    socket.on('data', (d: Buffer) => {
      p.received += d.toString('latin1');
      if (p.kickedAt === undefined && p.received.includes('no handshake within')) p.kickedAt = performance.now();
    });
    socket.on('error', () => {});
    socket.once('close', () => (p.closedAt = performance.now()));
    socket.once('connect', () => {
      (p as { openedAt: number }).openedAt = performance.now();
      socket.write(first);
      resolve(p);
    });
    socket.once('error', reject);
  });
}

const PARTIAL = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';

test('half-sent WebSocket upgrades are closed by the handshake deadline, and a flood of them holds at most max-clients sockets', async (t) => {
  const defer = cleanupStack(t);
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const agent = await new Agent({ node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 200 }, routes: new RouteTable(), handshakeTimeoutMs: DEADLINE_MS, maxClients: MAX_CLIENTS }).start();
  defer(() => agent.stop());
  const port = Number(new URL(agent.wsUrl as string).port);

  const started = performance.now();
  const probes = await Promise.all(Array.from({ length: 300 }, () => probe(port, PARTIAL)));
  defer(() => probes.forEach((p) => p.socket.destroy()));
  // Past the cap, sockets are closed at once.
  await waitFor(() => probes.filter((p) => p.closedAt !== undefined).length >= 300 - MAX_CLIENTS, DEADLINE_MS, 'the sockets over the cap to be closed');
  const early = probes.filter((p) => p.closedAt !== undefined && p.closedAt - p.openedAt < DEADLINE_MS - 200);
  assert.ok(early.length >= 300 - MAX_CLIENTS, `${early.length} closed at once`);
  const held = probes.filter((p) => p.closedAt === undefined);
  assert.ok(held.length <= MAX_CLIENTS, `${held.length} sockets held open, over the cap of ${MAX_CLIENTS}`);
  assert.ok(held.length > 0, 'some were admitted');

  // The admitted ones, at the deadline: not before it, and not long after.
  await waitFor(() => probes.every((p) => p.closedAt !== undefined), DEADLINE_MS + 5000, 'every half-upgrade to be closed');
  for (const p of held) {
    const lived = (p.closedAt as number) - p.openedAt;
    // Node's own header timeout would hold them for a minute or more.
    assert.ok(lived >= DEADLINE_MS - 100 && lived < DEADLINE_MS + 4000, `a half-upgrade lived ${lived.toFixed(0)} ms`);
    assert.equal(p.received, '', 'closed without an answer');
  }
  assert.ok(performance.now() - started < DEADLINE_MS + 6000);

  // The port still serves real clients once the flood is gone.
  const client = new GameClient({ transport: () => wsTransportNode(agent.wsUrl as string), reconnect: false, requestTimeoutMs: 3000 });
  defer(() => client.close());
  await client.connect();
  assert.equal(client.state, 'open');
});

test('the deadline runs from the TCP accept: a slow upgrade leaves less time for the Handshake frame', async (t) => {
  const defer = cleanupStack(t);
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const agent = await new Agent({ node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 200 }, routes: new RouteTable(), handshakeTimeoutMs: SLOW_DEADLINE_MS }).start();
  defer(() => agent.stop());
  const port = Number(new URL(agent.wsUrl as string).port);
  const p = await probe(port, PARTIAL);
  defer(() => p.socket.destroy());
  // The rest of the upgrade, 60 % of the deadline later; then never a Handshake frame.
  await new Promise((r) => setTimeout(r, SLOW_DEADLINE_MS * 0.6));
  p.socket.write('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await waitFor(() => p.received.includes('101 Switching Protocols'), 2000, 'the upgrade to complete');
  // Kicked as a client without a handshake (Kick code 7, in a WebSocket frame), then closed.
  await waitFor(() => p.kickedAt !== undefined, SLOW_DEADLINE_MS * 2, 'the agent to kick it');
  const lived = (p.kickedAt as number) - p.openedAt;
  // From the end of the upgrade, it would be 1.6 deadlines.
  assert.ok(lived >= SLOW_DEADLINE_MS - 100 && lived < SLOW_DEADLINE_MS * 1.45, `kicked ${lived.toFixed(0)} ms after connecting; the deadline is ${SLOW_DEADLINE_MS} ms from the accept`);
  // The close handshake the raw client never answers is cut short, too.
  await waitFor(() => p.closedAt !== undefined, 5000, 'the socket to be closed');
});
