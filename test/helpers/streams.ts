/**
 * Helpers for stream tests: a game node that accepts streams and a gate node
 * that depends on it (in this process, over real sockets), and small readers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { RpcError, type RpcErrorCode } from '../../src/service/errors.js';
import type { ServiceNode, ServiceNodeOptions } from '../../src/service/node.js';
import type { MeshStream, StreamHandler, StreamHub } from '../../src/service/stream/index.js';
import { cleanupStack, startDiscoveryServer, startNode, type Defer } from './mesh.js';
import { waitFor, within } from './proc.js';

export interface Pair {
  defer: Defer;
  sdaddr: string;
  game: ServiceNode;
  gate: ServiceNode;
}

export interface PairOptions {
  /** The game's onStream; none: the game accepts no streams. */
  handler?: StreamHandler;
  game?: Partial<ServiceNodeOptions>;
  gate?: Partial<ServiceNodeOptions>;
}

/** Discovery, a "game" node (with `handler` as onStream) and a "gate" node linked to it. */
export async function startPair(t: Pick<TestContext, 'after'>, options: PairOptions = {}): Promise<Pair> {
  const defer = cleanupStack(t);
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const game = await startNode(defer, sdaddr, { name: 'game', ...options.game }, (n) => {
    if (options.handler) n.onStream(options.handler);
  });
  const gate = await startNode(defer, sdaddr, { name: 'gate', dependencies: ['game'], ...options.gate });
  await within(gate.whenReady(), 5000, 'the gate linked to the game');
  return { defer, sdaddr, game, gate };
}

/** Resolves on `open`, rejects with the stream's error. */
export async function opened(stream: MeshStream, ms = 5000): Promise<MeshStream> {
  await within(once(stream, 'open'), ms, 'the stream to open');
  return stream;
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The stream's error once it is destroyed (waits for 'close'); fails if it closes without one. */
export async function streamError(stream: MeshStream, ms = 5000): Promise<RpcError> {
  // Not events.once: it would reject with the very error this waits for.
  if (!stream.closed) await within(new Promise((resolve) => stream.once('close', resolve)), ms, 'the stream to close');
  const err = stream.errored;
  assert.ok(err instanceof RpcError, `expected the stream to fail with an RpcError, got ${String(err)}`);
  return err;
}

export async function expectStreamError(stream: MeshStream, code: RpcErrorCode, message?: RegExp, ms = 5000): Promise<RpcError> {
  const err = await streamError(stream, ms);
  assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  if (message) assert.match(err.message, message);
  return err;
}

/** The node's stream hub (private): its per-link figures are the memory the tests bound. */
export function hubOf(node: ServiceNode): StreamHub {
  return (node as unknown as { streams: StreamHub }).streams;
}

/** Waits until the node has `n` streams open in total. */
export async function waitForStreams(node: ServiceNode, n: number, ms = 5000): Promise<void> {
  await waitFor(() => hubOf(node).stats().reduce((a, s) => a + s.streams, 0) === n, ms, `${n} open streams on ${node.id}`);
}
