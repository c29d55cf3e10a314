import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { waitFor } from '../helpers/proc.js';
import { asJSON, asString, DiscoveryError, getJSON, getString, putJSON, type Discovery, type KvEvent, type ServiceDesc, type ServiceEvent } from '../../src/discovery/index.js';

/**
 * What any Discovery backend must do. The built-in server runs it in
 * discovery-builtin.test.ts; the etcd backend runs the same suite.
 */
export interface Backend {
  readonly name: string;
  /** Registration grace / lease time the backend was started with (ms). */
  readonly graceMs: number;
  connect(name?: string): Promise<Discovery>;
  /** Stops the server and starts it again with the same data (a crash and restart). */
  restart(): Promise<void>;
  /** A unique key prefix per test, so tests do not see each other's keys. */
  prefix(): string;
}

function svc(name: string, index: number, port = 1000 + index, meta: Record<string, string> = {}): ServiceDesc {
  return { name, id: `${name}#${index}@dev`, host: '127.0.0.1', port, meta };
}

export function discoveryBehaviour(backend: Backend): void {
  const clients: Discovery[] = [];
  async function connect(t: TestContext, name?: string): Promise<Discovery> {
    const d = await backend.connect(name);
    clients.push(d);
    t.after(() => d.close());
    return d;
  }

  describe(`Discovery behaviour: ${backend.name}`, () => {
    test('put, get, list, delete by key and by prefix', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      const r1 = await d.put(`${p}a`, 'one');
      const r2 = await d.put(`${p}b/x`, new Uint8Array([0, 1, 2, 255]));
      const r3 = await d.put(`${p}b/y`, 'why');
      assert.ok(r1 < r2 && r2 < r3, 'revisions increase');
      const a = await d.get(`${p}a`);
      assert.ok(a);
      assert.equal(asString(a), 'one');
      assert.equal(a.modRev, r1);
      assert.equal(a.createRev, r1);
      assert.deepEqual([...(await d.get(`${p}b/x`))!.value], [0, 1, 2, 255]);
      assert.equal(await d.get(`${p}missing`), undefined);
      await d.put(`${p}empty`, '');
      const empty = await d.get(`${p}empty`);
      assert.ok(empty && empty.value instanceof Uint8Array && empty.value.length === 0, 'an empty value is an empty Uint8Array');
      assert.equal(asString(empty), '');
      assert.equal(await d.delete(`${p}empty`), 1);
      assert.deepEqual((await d.list(`${p}b/`)).map((kv) => kv.key), [`${p}b/x`, `${p}b/y`]);
      const r4 = await d.put(`${p}a`, 'two');
      const a2 = (await d.get(`${p}a`))!;
      assert.equal(a2.createRev, r1, 'createRev survives updates');
      assert.equal(a2.modRev, r4);
      assert.equal(await d.delete(`${p}a`), 1);
      assert.equal(await d.delete(`${p}a`), 0, 'deleting a missing key deletes nothing');
      assert.equal(await d.deletePrefix(`${p}b/`), 2);
      assert.deepEqual(await d.list(p), []);
    });

    test('string and JSON helpers', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      await putJSON(d, `${p}cfg`, { heartbeat: 5, names: ['a', 'ü'] });
      assert.deepEqual(await getJSON(d, `${p}cfg`), { heartbeat: 5, names: ['a', 'ü'] });
      assert.deepEqual(asJSON((await d.get(`${p}cfg`))!), { heartbeat: 5, names: ['a', 'ü'] });
      await d.put(`${p}s`, 'héllo');
      assert.equal(await getString(d, `${p}s`), 'héllo');
      assert.equal(await getString(d, `${p}none`), undefined);
    });

    test('values of 1 MiB and more round-trip', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      const big = Buffer.alloc(1024 * 1024 + 17);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
      await d.put(`${p}big`, big);
      const kv = await d.get(`${p}big`);
      assert.ok(kv && Buffer.from(kv.value).equals(big));
      const listed = await d.list(`${p}`);
      assert.equal(listed.length, 1);
      assert.ok(Buffer.from(listed[0]!.value).equals(big));
    });

    test('clear deletes every value but keeps the service registry', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      await d.put(`${p}x`, '1');
      await d.register(svc(`clear${p.replace(/\W/g, '')}`, 1));
      assert.ok((await d.clear()) >= 1);
      assert.equal(await d.get(`${p}x`), undefined);
      assert.equal((await d.listServices(`clear${p.replace(/\W/g, '')}`)).length, 1);
    });

    test('transactions apply all or nothing under compare conditions', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      const rev = await d.put(`${p}acct`, '100');
      // Stale compare: nothing applies.
      const fail = await d.txn([{ key: `${p}acct`, modRev: rev - 1 }], [
        { type: 'put', key: `${p}acct`, value: '0' },
        { type: 'put', key: `${p}log`, value: 'x' },
      ]);
      assert.equal(fail.succeeded, false);
      assert.equal(asString((await d.get(`${p}acct`))!), '100');
      assert.equal(await d.get(`${p}log`), undefined);
      // Right compare, plus "must not exist": all apply at one revision.
      const ok = await d.txn([{ key: `${p}acct`, modRev: rev }, { key: `${p}log`, modRev: 0 }], [
        { type: 'put', key: `${p}acct`, value: '50' },
        { type: 'put', key: `${p}log`, value: 'spent 50' },
      ]);
      assert.equal(ok.succeeded, true);
      const acct = (await d.get(`${p}acct`))!;
      const log = (await d.get(`${p}log`))!;
      assert.equal(asString(acct), '50');
      assert.equal(acct.modRev, ok.revision);
      assert.equal(log.modRev, ok.revision, 'one revision for the whole transaction');
      // "Must not exist" now fails.
      const again = await d.txn([{ key: `${p}log`, modRev: 0 }], [{ type: 'delete', key: `${p}acct` }]);
      assert.equal(again.succeeded, false);
      assert.ok(await d.get(`${p}acct`));
      // Delete by prefix inside a transaction.
      await d.put(`${p}tmp/1`, 'a');
      await d.put(`${p}tmp/2`, 'b');
      const del = await d.txn([], [{ type: 'delete', key: `${p}tmp/`, prefix: true }, { type: 'put', key: `${p}done`, value: 'y' }]);
      assert.equal(del.succeeded, true);
      assert.deepEqual(await d.list(`${p}tmp/`), []);
      assert.ok(await d.get(`${p}done`));
    });

    test('concurrent compare-and-set: exactly one writer wins', async (t) => {
      const [a, b] = await Promise.all([connect(t), connect(t)]);
      const p = backend.prefix();
      const rev = await a.put(`${p}lock`, 'free');
      const results = await Promise.all([a, b, a, b].map((d, i) => d.txn([{ key: `${p}lock`, modRev: rev }], [{ type: 'put', key: `${p}lock`, value: `owner${i}` }])));
      assert.equal(results.filter((r) => r.succeeded).length, 1);
    });

    test('a watch gets a snapshot, then every change in revision order', async (t) => {
      const writer = await connect(t);
      const watcher = await connect(t);
      const p = backend.prefix();
      await writer.put(`${p}k1`, 'v1');
      await writer.put(`${p}other`, 'not watched');
      const events: KvEvent[] = [];
      const w = await watcher.watch(`${p}k`, { onEvent: (e) => events.push(e) });
      t.after(() => w.stop());
      assert.deepEqual(w.list().map((kv) => kv.key), [`${p}k1`], 'snapshot holds what existed');
      assert.equal(events.length, 0, 'the snapshot is not replayed as events');
      const revs: number[] = [];
      for (let i = 0; i < 20; i++) revs.push(await writer.put(`${p}k${i % 3}`, `v${i}`));
      revs.push(await writer.put(`${p}zzz`, 'outside the prefix'));
      await writer.delete(`${p}k1`);
      await waitFor(() => events.length === 21, 3000, '21 events');
      const eventRevs = events.map((e) => (e.type === 'put' ? e.kv.modRev : e.revision));
      assert.deepEqual(eventRevs, [...eventRevs].sort((x, y) => x - y), 'events in revision order');
      assert.deepEqual(eventRevs.slice(0, 20), revs.slice(0, 20));
      const last = events[20]!;
      assert.equal(last.type, 'delete');
      assert.equal(last.type === 'delete' && last.prev ? asString(last.prev) : '', 'v19');
      assert.equal(w.get(`${p}k1`), undefined, 'cache follows deletes');
      assert.equal(asString(w.get(`${p}k2`)!), 'v17');
      assert.equal(asString(watcher.cached(`${p}k0`)!), 'v18', 'client-wide cached read');
      assert.equal(watcher.cached(`${p}other`), undefined, 'unwatched keys are not cached');
    });

    test('watch events as an async iterator', async (t) => {
      const d = await connect(t);
      const p = backend.prefix();
      const w = await d.watch(p);
      const got: string[] = [];
      const reading = (async () => {
        for await (const e of w) {
          got.push(e.type === 'put' ? `put ${e.kv.key}` : `delete ${e.key}`);
          if (got.length === 3) break;
        }
      })();
      await d.put(`${p}1`, 'a');
      await d.put(`${p}2`, 'b');
      await d.delete(`${p}1`);
      await reading;
      assert.deepEqual(got, [`put ${p}1`, `put ${p}2`, `delete ${p}1`]);
      w.stop();
    });

    test('after a server restart, a watch resumes with no gap and no duplicate', async (t) => {
      const watcher = await connect(t, 'watcher');
      const p = backend.prefix();
      await watcher.put(`${p}a`, '1');
      await watcher.put(`${p}b`, '1');
      const events: KvEvent[] = [];
      const w = await watcher.watch(p, { onEvent: (e) => events.push(e) });
      t.after(() => w.stop());
      await backend.restart();
      // Changes made right after the restart, from another client.
      const writer = await connect(t, 'writer');
      await writer.put(`${p}a`, '2');
      await writer.delete(`${p}b`);
      await writer.put(`${p}c`, '1');
      await waitFor(() => asString(w.get(`${p}c`) ?? { key: '', value: new Uint8Array(), createRev: 0, modRev: 0 }) === '1' && !w.get(`${p}b`) && asString(w.get(`${p}a`)!) === '2', 10_000, 'the watcher to catch up');
      // Let any late duplicate arrive before counting.
      await new Promise((r) => setTimeout(r, 200));
      const seen = events.map((e) => (e.type === 'put' ? `put ${e.kv.key}=${asString(e.kv)}` : `delete ${e.key}`));
      assert.deepEqual(seen.sort(), [`delete ${p}b`, `put ${p}a=2`, `put ${p}c=1`]);
      assert.deepEqual(w.list().map((kv) => `${kv.key}=${asString(kv)}`), [`${p}a=2`, `${p}c=1`]);
    });

    test('registry: watchers see add, update and remove', async (t) => {
      const owner = await connect(t, 'owner');
      const watcher = await connect(t, 'watcher');
      const name = `reg${backend.prefix().replace(/\W/g, '')}`;
      const events: ServiceEvent[] = [];
      const sw = await watcher.watchServices(name, { onEvent: (e) => events.push(e) });
      t.after(() => sw.stop());
      await owner.register(svc(name, 1));
      await waitFor(() => events.length === 1, 3000, 'add');
      assert.equal(events[0]!.type, 'add');
      assert.deepEqual(events[0]!.desc, svc(name, 1));
      await owner.register(svc(name, 1, 2000, { load: '7' }));
      await waitFor(() => events.length === 2, 3000, 'update');
      assert.equal(events[1]!.type, 'update');
      assert.equal(events[1]!.desc.port, 2000);
      assert.equal(sw.get(svc(name, 1).id)?.meta['load'], '7', 'cached view follows');
      await owner.register(svc(name, 2));
      await waitFor(() => sw.list().length === 2, 3000, 'second instance');
      await owner.deregister(name, svc(name, 1).id);
      await waitFor(() => events.some((e) => e.type === 'remove'), 3000, 'remove');
      assert.deepEqual(sw.list().map((s) => s.id), [svc(name, 2).id]);
      assert.deepEqual((await watcher.listServices(name)).map((s) => s.id), [svc(name, 2).id]);
    });

    test('registry: a closed client\'s services are removed after the grace period', async (t) => {
      const watcher = await connect(t, 'watcher');
      const name = `gone${backend.prefix().replace(/\W/g, '')}`;
      const owner = await backend.connect('owner');
      await owner.register(svc(name, 1));
      const sw = await watcher.watchServices(name);
      t.after(() => sw.stop());
      assert.equal(sw.list().length, 1);
      const closedAt = Date.now();
      await owner.close();
      await waitFor(() => sw.list().length === 0, backend.graceMs + 3000, 'removal');
      const took = Date.now() - closedAt;
      assert.ok(took >= backend.graceMs * 0.5, `removed after ${took} ms, before the ${backend.graceMs} ms grace`);
    });

    test('registry: services come back by themselves after a server restart', async (t) => {
      const owner = await connect(t, 'owner');
      const watcher = await connect(t, 'watcher');
      const name = `back${backend.prefix().replace(/\W/g, '')}`;
      await owner.register(svc(name, 1, 4242));
      await backend.restart();
      // Whether the server kept the data or not, the live owner's registration must be there.
      await waitFor(() => owner.connected && watcher.connected, 10_000, 'reconnect');
      const sw = await watcher.watchServices(name);
      t.after(() => sw.stop());
      await waitFor(() => sw.list().length === 1, 10_000, 're-registration');
      assert.equal(sw.list()[0]!.port, 4242);
      // And it stays past the grace period: it is owned again, not orphaned.
      await new Promise((r) => setTimeout(r, backend.graceMs + 500));
      assert.equal(sw.list().length, 1);
    });

    test('bad input gets a clear error', async (t) => {
      const d = await connect(t);
      await assert.rejects(d.register({ name: '', id: 'x', host: 'h', port: 1, meta: {} }), (e: unknown) => e instanceof DiscoveryError && e.code === 'bad_request' && /name/.test(e.message));
      await assert.rejects(d.register({ name: 'a/b', id: 'x', host: 'h', port: 1, meta: {} }), (e: unknown) => e instanceof DiscoveryError && e.code === 'bad_request');
      await assert.rejects(d.register({ name: 'a', id: 'x', host: 'h', port: 70000, meta: {} }), (e: unknown) => e instanceof DiscoveryError && /port/.test(e.message));
      await assert.rejects(d.put('', 'x'), (e: unknown) => e instanceof DiscoveryError && e.code === 'bad_request');
      // The client is still usable.
      const p = backend.prefix();
      await d.put(`${p}ok`, 'fine');
      assert.equal(asString((await d.get(`${p}ok`))!), 'fine');
    });
  });
}
