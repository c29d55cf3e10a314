import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openStore, type PlayerStore } from '../../demo/game/store.js';
import { FIXTURES, Proc } from '../helpers/proc.js';
import path from 'node:path';

/**
 * What the demo's player store must do on any backend: demo-store.test.ts
 * runs it on SQLite and on PostgreSQL, unchanged.
 */
export interface StoreBackend {
  readonly name: string;
  /** A fresh, empty database for one test: its --db value. */
  db(t: { after(fn: () => unknown): void }): Promise<string>;
}

export function storeBehaviour(backend: StoreBackend): void {
  describe(`Player store: ${backend.name}`, () => {
    const open = async (t: { after(fn: () => unknown): void }, db: string): Promise<PlayerStore> => {
      const store = await openStore(db);
      let closed = false;
      t.after(() => (closed ? undefined : store.close()));
      return {
        load: (n) => store.load(n),
        save: (s) => store.save(s),
        forget: (n) => store.forget(n),
        stats: () => store.stats(),
        close: async () => {
          closed = true;
          await store.close();
        },
      };
    };

    test('a new player starts at level 1 and is saved; states survive a reopen; names are data, never SQL', async (t) => {
      const db = await backend.db(t);
      const a = await open(t, db);
      const names = ['ann', "o'brien", 'robert"); DROP TABLE players;--', 'ünï 🎮', 'x'.repeat(200)];
      for (const n of names) assert.deepEqual(await a.load(n), { name: n, level: 1, gold: 0 });
      await a.save({ name: 'ann', level: 3, gold: 9_000_000_000 });
      await a.close();
      const b = await open(t, db);
      assert.deepEqual(await b.load('ann'), { name: 'ann', level: 3, gold: 9_000_000_000 }, 'gold past 2^32 survives');
      for (const n of names.slice(1)) assert.deepEqual(await b.load(n), { name: n, level: 1, gold: 0 });
    });

    test('writes made together commit together, each acknowledged after its commit, the last one of a player winning', async (t) => {
      const db = await backend.db(t);
      const s = await open(t, db);
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 1000; i++) writes.push(s.save({ name: `p${i % 100}`, level: 1, gold: i }));
      await Promise.all(writes);
      const { writes: w, commits } = s.stats();
      assert.equal(w, 1000);
      assert.ok(commits >= 1 && commits <= 10, `1,000 writes in ${commits} commits`);
      await s.close();
      const r = await open(t, db);
      for (let p = 0; p < 100; p++) assert.equal((await r.load(`p${p}`)).gold, 900 + p, `p${p} holds its last write`);
    });

    test('kill -9 mid-traffic loses no acknowledged write', async (t) => {
      const db = await backend.db(t);
      const proc = new Proc('store-writer', process.execPath, [path.join(FIXTURES, 'store-writer.js'), db, '8']);
      t.after(() => proc.stop());
      await proc.waitForStdout(/ready/, 15_000);
      const deadline = Date.now() + 20_000;
      while ((proc.stdout.match(/acked/g)?.length ?? 0) < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await proc.kill('SIGKILL');
      const acked = new Map<string, number>();
      for (const m of proc.stdout.matchAll(/^acked (\S+) (\d+)$/gm)) acked.set(m[1] as string, Math.max(acked.get(m[1] as string) ?? 0, Number(m[2])));
      assert.ok(acked.size === 8, `every writer acknowledged writes: ${[...acked].join(' ')}`);
      const s = await open(t, db);
      for (const [name, gold] of acked) {
        const got = (await s.load(name)).gold;
        // One more than acknowledged may have committed without its ack printed.
        assert.ok(got >= gold && got <= gold + 1, `${name}: ${got} on disk, ${gold} acknowledged`);
      }
    });
  });
}
