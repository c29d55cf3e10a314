/**
 * Harbors and routed frames under hostile input: truncated and random
 * HarborRoute bodies, a node routing as someone else, routed frames from a
 * peer that is not a harbor, random bytes as exported registrations, and the
 * fact that another harbor's cluster and a stream cannot be smuggled through.
 * After each attack the harbor still routes a real call.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Harbor } from '../src/harbor/harbor.js';
import { packAddr, parseAddr } from '../src/service/identity.js';
import { H, L } from '../src/service/messages.js';
import { RESPONSE_BIT } from '../src/service/rpc.js';
import { decodeRoute, encodeRoute, MAX_ROUTES, ROUTE_HEADER_BYTES, RouteTable } from '../src/service/route.js';
import { Link } from '../src/service/link.js';
import type { Session } from '../src/net/session.js';
import { EventEmitter } from 'node:events';
import { parseExport } from '../src/service/exports.js';
import { AgentPicker } from '../src/login/agents.js';
import { connectDiscovery } from '../src/discovery/connect.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, expectRpcError, SECRET, serveEcho, silent, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { RawLink } from './helpers/raw-link.js';
import { runCli, waitFor } from './helpers/proc.js';

const CENTER_SECRET = 'center-hostile-secret';

async function mesh(defer: Defer) {
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const harbors = await Promise.all(
    [1, 2].map(async (cluster) => {
      const h = new Harbor({ config: { sdaddr: cluster === 1 ? sd1.addr : sd2.addr, cluster, token: SECRET, listen: '127.0.0.1:0' }, center: center.addr, centerToken: CENTER_SECRET, logger: silent });
      defer(() => h.stop());
      return h.start();
    }),
  );
  await waitFor(() => harbors.every((h) => h.center.instances('harbor').length === 1), 5000, 'harbors linked');
  const target = await startNode(defer, sd2.addr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: 1 } }, serveEcho);
  return { sd1, sd2, h1: harbors[0] as Harbor, h2: harbors[1] as Harbor, target };
}

test('a harbor drops truncated, random and spoofed route frames, answers unreachable for unknown clusters, and keeps routing', async (t) => {
  const defer = cleanupStack(t);
  const { h1, target } = await mesh(defer);
  const me = packAddr({ cluster: 1, type: 8, index: 5 });
  const raw = await RawLink.open(defer, h1.local.address.port);
  await raw.handshake('fake#5@dev', SECRET, me);
  const req = (dst: number, src: number, seq: number) => encodeRoute({ dst, src, srcHarbor: 0, dstHarbor: 0, msgId: EchoReq.id, seq }, EchoReq.encode({ text: 'raw', n: seq }));
  const answers = () =>
    raw.frames.filter((f) => f.msgId === H.HarborRoute.id).map((f) => {
      const h = decodeRoute(f.body);
      assert.ok(h);
      return { ...h, body: f.body.subarray(ROUTE_HEADER_BYTES) };
    });

  // A real request through the raw link works: the answer comes back routed, with the call id's response bit.
  raw.send(H.HarborRoute.id, 0, req(target.addr, me, 7));
  await waitFor(() => answers().some((a) => a.seq === (7 | RESPONSE_BIT) >>> 0), 3000, 'the routed answer');
  const ok = answers().find((a) => a.seq === (7 | RESPONSE_BIT) >>> 0);
  assert.equal(ok?.src, target.addr);
  assert.equal(ok?.dst, me);
  assert.equal(EchoResp.decode(ok?.body as Buffer).server, target.id);

  const dropped0 = h1.counts.dropped;
  raw.send(H.HarborRoute.id, 0, Buffer.alloc(5)); // shorter than a header
  raw.send(H.HarborRoute.id, 0, req(target.addr, packAddr({ cluster: 1, type: 8, index: 6 }), 8)); // routing as another node
  raw.send(H.HarborDown.id, 0, Buffer.from([0xff, 0xff])); // nodes do not send HarborDown
  await waitFor(() => h1.counts.dropped >= dropped0 + 3, 2000, 'the bad frames are dropped');
  assert.ok(!answers().some((a) => a.seq === (8 | RESPONSE_BIT) >>> 0), 'the spoofed request got nowhere');

  // An unknown cluster: a typed error at once, on the same link.
  raw.send(H.HarborRoute.id, 0, req(parseAddr('9.1.1'), me, 9));
  await waitFor(() => answers().some((a) => a.seq === (9 | RESPONSE_BIT) >>> 0), 2000, 'the unreachable answer');
  const err = answers().find((a) => a.seq === (9 | RESPONSE_BIT) >>> 0);
  assert.equal(err?.msgId, L.RpcError.id);
  assert.equal(L.RpcError.decode(err?.body as Buffer).code, 'unreachable');

  // Random bodies, honest source or not: nothing crashes or closes the link.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, honest) => {
      const body = Buffer.from(bytes);
      if (honest && body.length >= ROUTE_HEADER_BYTES) body.writeUInt32BE(me, 4);
      raw.send(H.HarborRoute.id, 0, body);
    }),
    { numRuns: 300 },
  );
  raw.send(H.HarborRoute.id, 0, req(target.addr, me, 10));
  await waitFor(() => answers().some((a) => a.seq === (10 | RESPONSE_BIT) >>> 0), 3000, 'a real call still goes through after the fuzz');
  assert.equal(raw.isClosed, false);
});

test('a node ignores routed frames from a peer that is not its harbor; streams do not cross harbors', async (t) => {
  const defer = cleanupStack(t);
  const { sd1, target } = await mesh(defer);
  const stats = { calls: 0 };
  target.use({ server: (call, next) => (stats.calls++, next()) });
  // A plain node of cluster 2 (not a harbor) sends a routed request to the target.
  const raw = await RawLink.open(defer, target.address.port);
  await raw.handshake('liar#1@dev', SECRET, packAddr({ cluster: 2, type: 8, index: 1 }));
  raw.send(H.HarborRoute.id, 0, encodeRoute({ dst: target.addr, src: parseAddr('1.8.1'), srcHarbor: 0, dstHarbor: 0, msgId: EchoReq.id, seq: 1 }, EchoReq.encode({ text: 'x', n: 1 })));
  raw.send(H.HarborDown.id, 0, H.HarborDown.encode({ harbor: parseAddr('1.255.0') }));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(stats.calls, 0, 'the routed request was not dispatched');
  assert.equal(raw.isClosed, false);

  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1, 5000, 'caller links to its harbor');
  const stream = caller.openStream({ addr: target.logicalAddress });
  const failure = await new Promise<Error>((resolve) => stream.once('error', resolve));
  assert.match(failure.message, /do not cross harbors/);
  // Calls still do.
  assert.equal((await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'y', n: 2 })).server, target.id);
});

test('losing a harbor of the target cluster fails the calls routed through it at once (HarborDown)', async (t) => {
  const defer = cleanupStack(t);
  const { sd1, sd2, h2, target } = await mesh(defer);
  // A second harbor in cluster 2, so cluster 2 stays reachable.
  const center = h2.center.config.sdaddr;
  const h2b = new Harbor({ config: { sdaddr: sd2.addr, cluster: 2, svcindex: 1, token: SECRET, listen: '127.0.0.1:0' }, center, centerToken: CENTER_SECRET, logger: silent });
  defer(() => h2b.stop());
  await h2b.start();
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1 && target.instances('harbor').length === 2, 5000, 'links');
  const to = { addr: target.logicalAddress };
  await caller.call(to, EchoReq, EchoResp, { text: 'warm', n: 0 }); // the answer names the harbor of cluster 2 it came through
  const slow = caller.call(to, EchoReq, EchoResp, { text: 'sleep:5000', n: 1 }, { timeoutMs: 10_000 });
  slow.catch(() => {}); // it fails while the harbor stops; checked below
  await new Promise((r) => setTimeout(r, 200));
  // Stop whichever harbor of cluster 2 carried it: the one with forwarded frames.
  const used = h2.counts.forwarded > 0 ? h2 : h2b;
  const t0 = performance.now();
  await used.stop();
  await expectRpcError(slow, 'unavailable', /harbor .* (is down|lost)/);
  assert.ok(performance.now() - t0 < 3000, 'failed at once, not at the deadline');
  assert.equal((await caller.call(to, EchoReq, EchoResp, { text: 'again', n: 2 })).server, target.id, 'the other harbor of cluster 2 carries new calls');
});

test('exported-registration copies and the login agent picker refuse what they may not use', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const d = parseExport(bytes);
      if (d) assert.ok(typeof d.name === 'string' && typeof d.host === 'string' && Number.isInteger(d.port));
    }),
  );
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const d = parseExport(Buffer.from(JSON.stringify(v) ?? 'null'));
      if (d) assert.ok(Object.values(d.meta).every((x) => typeof x === 'string'));
    }),
  );
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const disco = await connectDiscovery(addr, {});
  defer(() => disco.close());
  const agent = (cluster: number, index: number, exported: boolean) =>
    disco.register({ name: 'agent', id: `agent#${index}@dev`, host: '127.0.0.1', port: 1000 + index, meta: { addr: `${cluster}.1.${index}`, group: 'dev', tcp: `127.0.0.1:${2000 + index}`, ...(exported ? { export: '1' } : {}) } });
  await agent(1, 1, false);
  await agent(2, 2, false);
  await agent(2, 3, true);
  const { visibleInCluster } = await import('../src/service/cluster-scope.js');
  const picker = await AgentPicker.open(disco, { group: 'dev', visible: (d) => visibleInCluster(1, d) });
  defer(() => picker.close());
  await waitFor(() => picker.agents().length > 0, 2000, 'agents seen');
  assert.deepEqual(picker.agents().map((d) => d.id).sort(), ['agent#1@dev', 'agent#3@dev']);
  for (let i = 0; i < 20; i++) assert.notEqual(picker.pick()?.id, 'agent#2@dev');
});

test('harbor-to-harbor links and the center take the center token, not the cluster token', async (t) => {
  const defer = cleanupStack(t);
  const { sd1, h1 } = await mesh(defer);
  // The cluster's token does not open the center side of a harbor...
  const wrong = await RawLink.open(defer, h1.center.address.port);
  const nonce = await wrong.challenge();
  assert.equal(nonce.length, 16);
  wrong.send(L.LinkHello.id, 1, L.LinkHello.encode({ id: 'intruder#0@c1', name: 'harbor', addr: parseAddr('1.255.9'), nonce: Buffer.alloc(16), proof: Buffer.alloc(32), protocol: 1, load: 0 }));
  await wrong.expectClosed('a center link with the wrong proof');
  // ...the center token does.
  const right = await RawLink.open(defer, h1.center.address.port);
  assert.equal((await right.handshake('harbor#9@c7', CENTER_SECRET, parseAddr('7.255.9'))).name, 'harbor');
  // A harbor that holds the wrong center token cannot join the center at all.
  const bad = new Harbor({ config: { sdaddr: sd1.addr, cluster: 1, svcindex: 3, token: SECRET, listen: '127.0.0.1:0' }, center: h1.center.config.sdaddr, centerToken: 'not-the-center-token', logger: silent });
  defer(() => bad.stop());
  await assert.rejects(bad.start(), /token|unauthorized/i);
});

test('gamemesh harbor refuses bad flags with a clear message', async () => {
  const none = await runCli(['harbor', '--loglevel', 'fatal']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /--center is required/);
  const same = await runCli(['harbor', '--sdaddr', '127.0.0.1:1', '--center', '127.0.0.1:1', '--loglevel', 'fatal']);
  assert.equal(same.code, 1);
  assert.match(same.stderr, /the center must be another one/);
  const bad = await runCli(['harbor', '--center', 'x', '--max-queue', 'lots']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /max-queue/);
});

test('a node keeps a bounded number of routes: idle ones go first, busy ones stay', () => {
  const session = Object.assign(new EventEmitter(), { id: 1, transport: 'tcp', remoteAddress: 'x', connectedAt: 0, closed: false, outboundBytes: 0, send: () => true, setTimeouts: () => {}, close: () => {} });
  const harbor = new Link(session as unknown as Session, 'harbor#0@dev', 'harbor', parseAddr('1.255.0'), true, 0, () => {});
  const busy = new Set<Link>();
  const closed: Link[] = [];
  const table = new RouteTable({ addr: () => parseAddr('1.8.1'), harbors: () => [{ addr: harbor.peerAddr, link: harbor }], dispatch: () => {}, closed: (l) => void closed.push(l), busy: (l) => busy.has(l) });
  const first = table.linkTo(packAddr({ cluster: 2, type: 1, index: 1 }));
  busy.add(first);
  for (let i = 0; i < MAX_ROUTES + 1000; i++) table.linkTo(packAddr({ cluster: 3 + (i >>> 18), type: (i >>> 10) & 0xff, index: i & 0x3ff }));
  assert.ok(table.size <= MAX_ROUTES, `routes stay under the cap (${table.size})`);
  assert.ok(closed.length > 0 && !closed.includes(first), 'idle routes were evicted, the busy one was not');
  assert.equal(table.linkTo(packAddr({ cluster: 2, type: 1, index: 1 })), first, 'the busy route is still the same link');
});
