/**
 * The demo's player store on SQLite (the default) and on PostgreSQL (a
 * throwaway cluster): the same suite on both, and a PostgreSQL outage.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { openStore } from '../demo/game/store.js';
import { PgCluster, postgresMissing } from './helpers/postgres.js';
import { tempDir } from './helpers/proc.js';
import { storeBehaviour } from './suites/store-behaviour.js';

storeBehaviour({
  name: 'SQLite',
  db: async (t) => path.join(tempDir(t), 'game.sqlite'),
});

const missing = postgresMissing();
if (missing) {
  if (process.env['CI']) test('PostgreSQL is installed (required when CI is set)', () => assert.fail(missing));
  else test('player store on PostgreSQL', { skip: missing }, () => {});
} else {
  // One cluster for the file; each test gets its own database.
  let cluster: PgCluster | undefined;
  let n = 0;
  const admin = async () => {
    cluster ??= await PgCluster.start();
    return cluster;
  };
  test.after(() => cluster?.stop());
  storeBehaviour({
    name: 'PostgreSQL',
    async db() {
      const c = await admin();
      const name = `t${process.pid}_${n++}`;
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: c.url });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      return c.url.replace(/\/postgres$/, `/${name}`);
    },
  });

  test('two processes on one table: a stale write is refused, never overwrites, and the player is read again', async () => {
    const c = await admin();
    const a = await openStore(c.url);
    const b = await openStore(c.url);
    try {
      await a.load('shared');
      await b.load('shared');
      await a.save({ name: 'shared', level: 1, gold: 50 });
      // b still holds gold 0, as a game instance cut off by a partition would.
      await assert.rejects(b.save({ name: 'shared', level: 1, gold: 5 }), /changed elsewhere since it was read here/);
      assert.equal((await b.load('shared')).gold, 50, 'b reads the truth after the refusal');
      await b.save({ name: 'shared', level: 1, gold: 60 });
      // a's cache is stale now; sign-in (forget) makes it read again.
      a.forget('shared');
      assert.equal((await a.load('shared')).gold, 60);
      // Many writes of one player in one group commit still apply, over the one version read.
      await Promise.all([1, 2, 3].map((n) => a.save({ name: 'shared', level: 1, gold: 60 + n })));
      b.forget('shared');
      assert.equal((await b.load('shared')).gold, 63);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('PostgreSQL killed: saves fail with a clear error in bounded time, and work again once it is back', async () => {
    const c = await admin();
    const store = await openStore(c.url);
    try {
      await store.save({ name: 'outage', level: 2, gold: 10 });
      await c.kill9();
      const started = Date.now();
      await assert.rejects(store.save({ name: 'outage', level: 2, gold: 20 }), /postgres: write failed/);
      assert.ok(Date.now() - started < 15_000, 'the failure is reported within the query timeout');
      await c.startServer();
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        // As the game does: read, then write (after a failed write the store reads the database again).
        ok = await store
          .load('outage')
          .then(() => store.save({ name: 'outage', level: 2, gold: 30 }))
          .then(
          () => true,
          () => new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
        );
      }
      assert.ok(ok, 'saves work again after the restart');
    } finally {
      await store.close();
    }
    const again = await openStore(c.url);
    try {
      assert.equal((await again.load('outage')).gold, 30);
    } finally {
      await again.close();
    }
  });
}
