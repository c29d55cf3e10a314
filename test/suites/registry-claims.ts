import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { waitFor } from '../helpers/proc.js';
import { clearServices } from '../../src/discovery/claims.js';
import { RegistrationConflict, type Discovery, type ServiceDesc } from '../../src/discovery/index.js';
import { pino } from 'pino';
import { registerWhenFree } from '../../src/service/directory.js';
import type { Backend } from './discovery-behaviour.js';

const silent = pino({ level: 'silent' });

/**
 * Claims on any backend (the built-in server in discovery-builtin.test.ts,
 * etcd in discovery-etcd.test.ts): one live registration per service id and
 * per logical address, refused atomically, released with the registration,
 * taken back by the same client after a reconnect, and put back by the
 * owner when someone deletes it.
 */
export function registryClaims(backend: Backend): void {
  async function connect(t: TestContext, name?: string): Promise<Discovery> {
    const d = await backend.connect(name);
    t.after(() => d.close());
    return d;
  }
  let n = 0;
  /** A service name and cluster number of its own per test, so tests never share an id or an address. */
  function names(): { name: string; cluster: number } {
    n++;
    return { name: `claim${backend.prefix().replace(/\W/g, '')}`, cluster: 100 + n + Math.floor(Math.random() * 10_000) };
  }
  function desc(name: string, cluster: number, index: number, port: number, group = 'dev'): ServiceDesc {
    return { name, id: `${name}#${index}@${group}`, host: '127.0.0.1', port, meta: { addr: `${cluster}.20.${index}`, group, index: String(index) } };
  }
  /** The refusal once the server has noticed that the holder's connection closed (a moment after close()). */
  async function heldByGone(d: Discovery, newcomer: ServiceDesc): Promise<RegistrationConflict> {
    let err: unknown;
    await waitFor(async () => {
      err = await d.register(newcomer).catch((e: unknown) => e);
      return err instanceof RegistrationConflict && err.retryAfterMs !== undefined;
    }, 2000, 'the holder to be seen as gone');
    return err as RegistrationConflict;
  }
  const conflict = (re: RegExp) => (e: unknown) => e instanceof RegistrationConflict && e.code === 'conflict' && re.test(e.message);

  describe(`Registry claims: ${backend.name}`, () => {
    test('a second live registration of an id or an address is refused, atomically, and the original keeps its registration', async (t) => {
      const { name, cluster } = names();
      const [a, b] = await Promise.all([connect(t, 'a'), connect(t, 'b')]);
      const original = desc(name, cluster, 0, 4000);
      await a.register(original);
      await assert.rejects(b.register(desc(name, cluster, 0, 5000)), conflict(new RegExp(`^service id ${name}#0@dev is held by another process \\(127\\.0\\.0\\.1:4000\\)$`)));
      await assert.rejects(b.register(desc(name, cluster, 0, 5001, 'other')), conflict(new RegExp(`^logical address ${cluster}\\.20\\.0 is held by ${name}#0@dev \\(127\\.0\\.0\\.1:4000\\)$`)));
      const err = await b.register(desc(name, cluster, 0, 5002, 'other')).catch((e: unknown) => e);
      // The built-in server knows the holder's connection is up; etcd only knows its lease, which has a TTL.
      assert.ok(err instanceof RegistrationConflict && (err.retryAfterMs === undefined || err.retryAfterMs <= backend.graceMs + 1000), `retryAfterMs ${String((err as RegistrationConflict).retryAfterMs)}`);
      // Nothing of the refused registrations was written, and the original is as it was.
      assert.deepEqual((await b.listServices(name)).map((s) => `${s.id} ${s.port}`), [`${name}#0@dev 4000`]);
      // Its owner may update it; a refused client holds nothing it could release.
      await a.register({ ...original, meta: { ...original.meta, load: '3' } });
      await b.deregister(name, `${name}#0@other`).catch(() => {});
      await new Promise((r) => setTimeout(r, backend.graceMs + 500));
      assert.deepEqual((await b.listServices(name)).map((s) => `${s.id} ${s.port} ${s.meta['load']}`), [`${name}#0@dev 4000 3`]);
    });

    test('racing newcomers: exactly one of eight gets the address', async (t) => {
      const { name, cluster } = names();
      const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => connect(t, `racer${i}`)));
      const results = await Promise.allSettled(clients.map((c, i) => c.register(desc(name, cluster, 0, 6000 + i, `g${i}`))));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, results.map((r) => r.status).join(','));
      assert.ok(results.every((r) => r.status === 'fulfilled' || conflict(/is held by/)(r.reason)));
      assert.equal((await clients[0]!.listServices(name)).length, 1);
    });

    test('deregistering, or moving to another address, releases the claims', async (t) => {
      const { name, cluster } = names();
      const [a, b] = await Promise.all([connect(t, 'a'), connect(t, 'b')]);
      await a.register(desc(name, cluster, 0, 4000));
      // a moves to index 1's address: index 0's address is free again, for b under another id.
      await a.register({ ...desc(name, cluster, 0, 4000), meta: { ...desc(name, cluster, 0, 4000).meta, addr: `${cluster}.20.1` } });
      await b.register(desc(name, cluster, 0, 4100, 'other'));
      await assert.rejects(b.register(desc(name, cluster, 1, 4101, 'other')), conflict(/is held by/));
      await a.deregister(name, `${name}#0@dev`);
      await b.register(desc(name, cluster, 1, 4101, 'other'));
      await b.register({ ...desc(name, cluster, 0, 4102), meta: { addr: `${cluster}.20.5` } });
      assert.deepEqual((await a.listServices(name)).map((s) => s.id).sort(), [`${name}#0@dev`, `${name}#0@other`, `${name}#1@other`]);
    });

    test('a dead holder is reported as expiring, and its id is free once its grace or lease is over', async (t) => {
      const { name, cluster } = names();
      const b = await connect(t, 'b');
      const a = await backend.connect('a');
      await a.register(desc(name, cluster, 0, 4000));
      await a.close();
      const err = await heldByGone(b, desc(name, cluster, 0, 4200));
      assert.ok(err.retryAfterMs !== undefined && err.retryAfterMs > 0 && err.retryAfterMs <= backend.graceMs + 1500, `retryAfterMs ${String(err.retryAfterMs)}`);
      await waitFor(async () => (await b.register(desc(name, cluster, 0, 4200)).then(() => true, () => false)), backend.graceMs + 5000, 'the id to be free', 100);
      assert.deepEqual((await b.listServices(name)).map((s) => s.port), [4200]);
    });

    test('registerWhenFree refuses a live holder (on etcd once its lease outlives its TTL) and waits out a dead one', async (t) => {
      const { name, cluster } = names();
      const [a, b] = await Promise.all([connect(t, 'a'), connect(t, 'b')]);
      await a.register(desc(name, cluster, 0, 4000));
      const started = Date.now();
      await assert.rejects(registerWhenFree(b, desc(name, cluster, 0, 4400), silent, 30_000), conflict(/^service id .* is held by another process \(127\.0\.0\.1:4000\)$/));
      const refusedIn = Date.now() - started;
      assert.ok(refusedIn < backend.graceMs + 3000, `a live holder refused after ${refusedIn} ms`);
      const c = await backend.connect('c');
      await c.register(desc(name, cluster, 1, 4001));
      await c.close();
      await heldByGone(b, desc(name, cluster, 1, 4401));
      const t0 = Date.now();
      await registerWhenFree(b, desc(name, cluster, 1, 4401), silent, 30_000);
      t.diagnostic(`${backend.name}: live holder refused in ${refusedIn} ms; a closed one's id taken after ${Date.now() - t0} ms`);
      assert.deepEqual((await b.listServices(name)).map((s) => `${s.id} ${s.port}`), [`${name}#0@dev 4000`, `${name}#1@dev 4401`]);
    });

    test('clearsvc on a live registry: the owner registers again, claims included, within a second', async (t) => {
      const { name, cluster } = names();
      const [a, other, ops] = await Promise.all([connect(t, 'a'), connect(t, 'other'), connect(t, 'operator')]);
      await a.register(desc(name, cluster, 0, 4000));
      await a.register(desc(name, cluster, 1, 4001));
      const seen: string[] = [];
      const sw = await ops.watchServices(name, { onEvent: (e) => seen.push(e.type) });
      t.after(() => sw.stop());
      await clearServices(ops);
      const cleared = Date.now();
      // Both removals seen, then both back (a watcher may still be behind when the clear returns).
      await waitFor(() => seen.filter((e) => e === 'remove').length === 2 && sw.list().length === 2, 1000, 'both registrations back within 1 s', 5);
      t.diagnostic(`${backend.name}: registered again ${Date.now() - cleared} ms after clearsvc`);
      // The claims came back with them.
      await assert.rejects(other.register(desc(name, cluster, 1, 4300, 'other')), conflict(/is held by/));
    });
  });
}
