/**
 * The per-client mailbox of GatewayBackend, through a real agent over real
 * sockets: one client's requests run one at a time in arrival order (async
 * handlers included), clients run concurrently, `{ concurrent: true }` opts
 * out, the queue is capped (busy), a client that leaves loses what it had
 * waiting, and a graceful stop still answers what was queued.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeTcpFrame } from '../src/client/frame.js';
import { EchoReq } from './helpers/echo.js';
import { answers, echoBurst, Peek, startBackendMesh } from './helpers/backend-mesh.js';
import { cleanupStack } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

/** A gate the test opens: handlers that await it hold their client's mailbox. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

test("one client's requests run one at a time in arrival order, async or not; different clients run at once", async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const counters = new Map<string, number>();
  const active = new Map<string, number>();
  let maxPerClient = 0;
  let activeAll = 0;
  let maxAll = 0;
  await mesh.startBackend((backend) => {
    backend.handle(EchoReq, EchoReq, (req) => {
      const [verb, key = ''] = req.text.split(':');
      if (verb === 'get') return { text: String(counters.get(key) ?? 0) };
      if (verb === 'throw') throw new Error('thrown');
      const enter = () => {
        active.set(key, (active.get(key) ?? 0) + 1);
        maxPerClient = Math.max(maxPerClient, active.get(key) ?? 0);
        maxAll = Math.max(maxAll, ++activeAll);
      };
      const leave = () => {
        active.set(key, (active.get(key) ?? 0) - 1);
        activeAll--;
      };
      return (async () => {
        enter();
        try {
          // Read, yield, write: exactly what loses updates when two of one client's requests overlap.
          const v = counters.get(key) ?? 0;
          await sleep(Math.random() * 3);
          if (verb === 'reject') throw new Error('rejected');
          counters.set(key, v + 1);
          return { text: String(v + 1) };
        } finally {
          leave();
        }
      })();
    });
  });
  const [a, b] = [await mesh.client(), await mesh.client()];
  const burst = (key: string) => [
    ...Array.from({ length: 50 }, () => `inc:${key}`),
    `throw:${key}`,
    `get:${key}`,
    `reject:${key}`,
    ...Array.from({ length: 50 }, () => `inc:${key}`),
    `get:${key}`,
  ];
  const seqs = Array.from({ length: 104 }, (_, i) => 10 + i);
  // Each client's 104 requests in one write.
  a.write(echoBurst(burst('a'), 10));
  b.write(echoBurst(burst('b'), 10));
  for (const [client, key] of [[a, 'a'], [b, 'b']] as const) {
    const got = await answers(client, seqs, 10_000);
    const texts = got.map((o) => (o.ok ? o.text : o.code));
    const expected = [...Array.from({ length: 50 }, (_, i) => String(i + 1)), 'application', '50', 'application', ...Array.from({ length: 50 }, (_, i) => String(i + 51)), '100'];
    assert.deepEqual(texts, expected, `client ${key}: answers in order, each increment on top of the one before`);
    assert.equal(counters.get(key), 100);
    // Answers leave in the order the requests ran.
    const order = client.frames.filter((f) => f.seq >= 10).map((f) => f.seq);
    assert.deepEqual(order, seqs, `client ${key}: answered in arrival order`);
  }
  assert.equal(maxPerClient, 1, 'never two requests of one client at once');
  assert.equal(maxAll, 2, 'the two clients did run at the same time');
});

test('{ concurrent: true } runs beside the client mailbox; sequential requests still wait their turn', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const g = gate();
  const ran: string[] = [];
  await mesh.startBackend((backend) => {
    backend.handle(EchoReq, EchoReq, async (req) => {
      ran.push(`start ${req.text}`);
      if (req.text === 'hold') await g.wait;
      ran.push(`end ${req.text}`);
      return { text: req.text };
    });
    backend.handle(Peek, EchoReq, () => {
      ran.push('peek');
      return { text: 'peeked' };
    }, { concurrent: true });
  });
  const c = await mesh.client();
  c.write(Buffer.concat([echoBurst(['hold', 'after'], 101), encodeTcpFrame(Peek.id, 103, new Uint8Array(0))]));
  const [peek] = await answers(c, [103], 5000);
  assert.deepEqual(peek, { ok: true, text: 'peeked', n: 0 });
  assert.deepEqual(ran, ['start hold', 'peek'], 'the concurrent handler did not wait; the second request did');
  g.open();
  await answers(c, [101, 102], 5000);
  assert.deepEqual(ran, ['start hold', 'peek', 'end hold', 'start after', 'end after']);
});

test("a client's queue is capped: overflow is answered busy, other clients are unaffected, memory stays bounded", async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer, { maxMsgsPerSec: 1_000_000 });
  const g = gate();
  let handled = 0;
  const { backend } = await mesh.startBackend(
    (b) =>
      b.handle(EchoReq, EchoReq, async (req) => {
        handled++;
        await g.wait;
        return { text: req.text };
      }),
    { maxQueuedPerClient: 8 },
  );
  const c = await mesh.client();
  const seqs = Array.from({ length: 50 }, (_, i) => i + 101);
  c.write(echoBurst(seqs.map((s) => `m${s - 100}`), 101));
  await waitFor(() => c.frames.length >= 1 + 42, 5000, '42 busy answers');
  assert.equal(backend.queued, 8, 'the running request and 7 waiting');
  const busy = c.frames.filter((f) => f.seq > 100);
  assert.equal(busy.length, 42);
  assert.ok(busy.every((f) => f.seq > 108), 'the first 8 were taken');

  // Another client is not held back by the full one.
  const other = await mesh.client();
  other.write(echoBurst(['other'], 101));
  await waitFor(() => handled === 2, 5000, "the other client's request to start");

  // A flood from many clients never holds more than the cap for each.
  const flooders = await Promise.all(Array.from({ length: 10 }, () => mesh.client()));
  let peak = 0;
  for (const f of flooders) f.write(echoBurst(Array.from({ length: 300 }, (_, i) => `f${i}`), 101));
  await waitFor(() => {
    peak = Math.max(peak, backend.queued);
    return flooders.every((f) => f.frames.length >= 1 + 292);
  }, 10_000, 'every flooder to get its busy answers');
  assert.ok(peak <= 8 + 1 + 10 * 8, `held at most the caps: ${peak}`);
  assert.equal(backend.queued, 8 + 1 + 10 * 8);

  g.open();
  const got = await answers(c, seqs, 5000);
  assert.deepEqual(got.slice(0, 8).map((o) => (o.ok ? o.text : o.code)), seqs.slice(0, 8).map((s) => `m${s - 100}`));
  for (const o of got.slice(8)) {
    assert.equal(o.ok, false);
    if (!o.ok) assert.equal(o.code, 'busy');
    if (!o.ok) assert.match(o.message, /over 8 messages of this client are waiting on echo#0@dev/);
  }
  await waitFor(() => backend.queued === 0, 5000, 'everything answered');
});

test('a client that leaves loses what it had waiting; onClientClosed runs once its running request settled', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const g = gate();
  const events: string[] = [];
  const { backend } = await mesh.startBackend((b) => {
    b.handle(EchoReq, EchoReq, async (req) => {
      events.push(`start ${req.text}`);
      await g.wait;
      events.push(`end ${req.text}`);
      return { text: req.text };
    });
    b.onClientClosed((_client, reason) => events.push(`closed (${reason})`));
  });
  const c = await mesh.client();
  c.write(echoBurst(['r1', 'r2', 'r3', 'r4', 'r5'], 101));
  await waitFor(() => events.length === 1 && backend.queued === 5, 5000, 'one running, four waiting');
  c.destroy();
  await waitFor(() => backend.queued === 1, 5000, 'the waiting four dropped');
  await sleep(100);
  assert.deepEqual(events, ['start r1'], 'not closed while its request runs');
  g.open();
  await waitFor(() => events.length === 3, 5000, 'the close hook');
  assert.equal(events[1], 'end r1');
  assert.match(events[2] as string, /^closed \(connection closed by peer\)$/);
  assert.equal(backend.queued, 0);
});

test("a graceful stop answers every request still in a client's mailbox, then refuses new ones", async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  let started = 0;
  const { node } = await mesh.startBackend((b) =>
    b.handle(EchoReq, EchoReq, async (req) => {
      started++;
      await sleep(100);
      return { text: req.text };
    }),
  );
  const c = await mesh.client();
  c.write(echoBurst(['q1', 'q2', 'q3', 'q4', 'q5'], 101));
  await waitFor(() => started === 1, 5000, 'the first request to start');
  const stopped = node.stop();
  const got = await answers(c, [101, 102, 103, 104, 105], 5000);
  assert.deepEqual(got.map((o) => (o.ok ? o.text : o.code)), ['q1', 'q2', 'q3', 'q4', 'q5']);
  await stopped;
  c.write(echoBurst(['late'], 106));
  const [late] = await answers(c, [106], 5000);
  assert.equal(late?.ok, false);
  if (late && !late.ok) assert.equal(late.code, 'unavailable');
});
