/**
 * Demo store bench: acknowledged writes per second, SQLite against
 * PostgreSQL (a throwaway cluster, when PostgreSQL 15 is installed), with
 * 1 and 200 players writing at once, each awaiting its save before the
 * next (as the game does). Both fsync every commit (SQLite synchronous=FULL,
 * PostgreSQL fsync=on, synchronous_commit=on).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, type PlayerStore } from '../demo/game/store.js';
import { PgCluster, postgresMissing } from '../test/helpers/postgres.js';
import { CpuLoad, loadNote, percentile, sortedCopy } from './harness.js';
import { DEFAULT_MS, fmtInt, fmtNum, printTable } from './lib.js';

async function drive(store: PlayerStore, players: number, ms: number): Promise<{ perSec: number; perCommit: number; p99: number }> {
  const lat: number[] = [];
  const before = store.stats();
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: players }, async (_, i) => {
      for (let gold = 0; performance.now() < end; gold++) {
        const t = performance.now();
        await store.save({ name: `bench-${i}`, level: 1, gold });
        lat.push(performance.now() - t);
      }
    }),
  );
  const after = store.stats();
  const writes = after.writes - before.writes;
  return { perSec: writes / (ms / 1000), perCommit: writes / Math.max(1, after.commits - before.commits), p99: percentile(sortedCopy(lat), 99) };
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const ms = Math.max(1000, DEFAULT_MS * 2);
  const rows: string[][] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gm-bench-store-'));
  const backends: Array<{ name: string; open: () => Promise<PlayerStore>; close?: () => Promise<void> }> = [{ name: 'SQLite (file, WAL, synchronous=FULL)', open: () => openStore(path.join(dir, 'game.sqlite')) }];
  let pg: PgCluster | undefined;
  if (!postgresMissing()) {
    pg = await PgCluster.start();
    const url = pg.url;
    backends.push({ name: 'PostgreSQL 15 (127.0.0.1, pg)', open: () => openStore(url) });
  }
  try {
    for (const b of backends) {
      const store = await b.open();
      try {
        for (const players of [1, 200]) {
          const r = await drive(store, players, ms);
          rows.push([b.name, String(players), fmtInt(r.perSec), fmtNum(r.perCommit), fmtNum(r.p99, 2)]);
        }
      } finally {
        await store.close();
      }
    }
  } finally {
    await pg?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable(`demo store: acknowledged writes for ${ms} ms`, ['store', 'players', 'writes/s', 'writes per commit', 'save p99 ms'], rows);
  console.log(loadNote(cpu));
}
