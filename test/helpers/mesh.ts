/**
 * Helpers for tests that run service nodes in-process: a discovery server,
 * nodes wired to it, an instrumented echo handler, a LIFO cleanup stack, and
 * assertions on typed RPC errors.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { DiscoveryServer } from '../../src/discovery/server.js';
import type { TcpListener } from '../../src/net/tcp.js';
import { RpcError, type RpcErrorCode } from '../../src/service/errors.js';
import { ServiceNode, type NodeConfig, type ServiceNodeOptions } from '../../src/service/node.js';
import { abortableSleep, EchoReq, EchoResp, sleepMs } from './echo.js';

export const silent = pino({ level: 'silent' });
export const SECRET = 'mesh-test-secret';

export type Defer = (fn: () => unknown) => void;

/**
 * Cleanup functions run after the test, last registered first (nodes stop
 * before the discovery server they deregister from), even when it fails.
 */
export function cleanupStack(t: Pick<TestContext, 'after'>): Defer {
  const stack: Array<() => unknown> = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const fn of stack.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (fn) => {
    stack.push(fn);
  };
}

/** An in-memory discovery server on 127.0.0.1, stopped after the test; with `token`, clients must present it (and may keep secrets in it). */
export async function startDiscoveryServer(defer: Defer, graceMs = 500, token?: string): Promise<{ server: DiscoveryServer; addr: string }> {
  const server = await new DiscoveryServer({ host: '127.0.0.1', port: 0, logger: silent, graceMs, token }).start();
  defer(() => server.stop());
  return { server, addr: `127.0.0.1:${server.address.port}` };
}

export interface NodeSpec extends Omit<ServiceNodeOptions, 'config' | 'logger'> {
  config?: Partial<NodeConfig>;
  logger?: ServiceNodeOptions['logger'];
}

/** A node on 127.0.0.1 with the test cluster secret, not started yet; stopped after the test. */
export function makeNode(defer: Defer, sdaddr: string, spec: NodeSpec): ServiceNode {
  const node = new ServiceNode({
    shutdownTimeoutMs: 2000,
    ...spec,
    logger: spec.logger ?? silent,
    config: { sdaddr, token: SECRET, listen: '127.0.0.1:0', ...spec.config },
  });
  defer(() => node.stop());
  return node;
}

export async function startNode(defer: Defer, sdaddr: string, spec: NodeSpec, setup?: (node: ServiceNode) => void): Promise<ServiceNode> {
  const node = makeNode(defer, sdaddr, spec);
  setup?.(node);
  await node.start();
  return node;
}

/** What an echo handler saw. */
export interface EchoStats {
  calls: number;
  /** Texts of requests whose handler started. */
  begun: string[];
  /** Texts of requests whose ctx.signal aborted, with the abort reason. */
  aborted: Array<{ text: string; reason: unknown }>;
}

/**
 * The echo RPC: answers {text, n, server: node.id}; `sleep:N` waits N ms
 * (abortable by ctx.signal), `throw:MSG` throws an Error, `rpcerror:CODE`
 * throws an RpcError with that code.
 */
export function serveEcho(node: ServiceNode): EchoStats {
  const stats: EchoStats = { calls: 0, begun: [], aborted: [] };
  node.handle(EchoReq, EchoResp, async (req, ctx) => {
    stats.calls++;
    stats.begun.push(req.text);
    ctx.signal.addEventListener('abort', () => stats.aborted.push({ text: req.text, reason: ctx.signal.reason }), { once: true });
    const ms = sleepMs(req.text);
    if (ms !== undefined) await abortableSleep(ms, ctx.signal);
    if (req.text.startsWith('throw:')) throw new Error(req.text.slice('throw:'.length));
    if (req.text.startsWith('rpcerror:')) throw new RpcError(req.text.slice('rpcerror:'.length) as RpcErrorCode, 'refused by the handler');
    return { text: req.text, n: req.n, server: node.id };
  });
  return stats;
}

/** Awaits `p`, which must fail with an RpcError of this code; returns the error. */
export async function expectRpcError(p: Promise<unknown>, code: RpcErrorCode, message?: RegExp): Promise<RpcError> {
  let result: unknown;
  try {
    result = await p;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected an RpcError(${code}), got ${String(err)}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected an RpcError(${code}), but the call succeeded with ${JSON.stringify(result)}`);
}

/**
 * TCP connections this node has accepted and not yet closed. Reaches into
 * the node's private listener: the public API has no connection count, and
 * counting accepted sockets is the one unambiguous way to see how many links
 * really exist between two nodes.
 */
export function acceptedSessions(node: ServiceNode): number {
  const listener = (node as unknown as { listener: TcpListener | undefined }).listener;
  assert.ok(listener, 'the node has a listener');
  return listener.sessions.size;
}

export function elapsedSince(t0: number): number {
  return performance.now() - t0;
}
