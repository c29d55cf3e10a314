import pg from 'pg';
import { START, type PlayerState } from './rules.js';
import type { PlayerStore, StoreStats } from './store.js';

interface PendingWrite {
  readonly state: PlayerState;
  readonly done: (err?: Error) => void;
}

/** Most rows in one statement; a bigger group is committed in several. */
const MAX_GROUP = 5000;

/**
 * Players in PostgreSQL (`--db postgres://...`). The same promise as
 * SQLite: writes waiting while a commit is under way are committed together
 * in the next one, as one multi-row upsert (one WAL flush), and each `save`
 * resolves after its commit. With one commit in flight at a time, a
 * player's writes commit in the order they were made.
 */
export class PgStore implements PlayerStore {
  private readonly cache = new Map<string, PlayerState>();
  private pending: PendingWrite[] = [];
  private writing = false;
  private scheduled = false;
  private readonly counts = { writes: 0, commits: 0 };
  private idle: Array<() => void> = [];

  private constructor(private readonly pool: pg.Pool) {}

  static async open(url: string): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, query_timeout: 10_000 });
    // An idle connection that the server closes must not crash the process; the pool replaces it.
    pool.on('error', () => {});
    try {
      await pool.query('CREATE TABLE IF NOT EXISTS players (name TEXT PRIMARY KEY, level INTEGER NOT NULL, gold BIGINT NOT NULL, updated BIGINT NOT NULL)');
    } catch (err) {
      await pool.end();
      throw new Error(`postgres: cannot prepare the players table: ${(err as Error).message}`);
    }
    return new PgStore(pool);
  }

  async load(name: string): Promise<PlayerState> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const res = await this.pool.query<{ name: string; level: number; gold: string }>('SELECT name, level, gold FROM players WHERE name = $1', [name]);
    const row = res.rows[0];
    // A save may have landed while the query ran: the cache is newer than the disk then.
    const now = this.cache.get(name);
    if (now) return now;
    if (row) {
      const state = { name: row.name, level: row.level, gold: Number(row.gold) };
      this.cache.set(name, state);
      return state;
    }
    const created = { name, ...START };
    await this.save(created);
    return this.cache.get(name) ?? created;
  }

  save(state: PlayerState): Promise<void> {
    this.cache.set(state.name, state);
    return new Promise((resolve, reject) => {
      this.pending.push({ state, done: (err) => (err ? reject(err) : resolve()) });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.pending.length === 0) return;
    this.writing = true;
    const batch = this.pending.splice(0, MAX_GROUP);
    // The last write of each player in the group is what the row must hold.
    const last = new Map<string, PlayerState>();
    for (const w of batch) last.set(w.state.name, w.state);
    const rows = [...last.values()];
    const now = Date.now();
    try {
      await this.pool.query(
        'INSERT INTO players (name, level, gold, updated) SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) ' +
          'ON CONFLICT (name) DO UPDATE SET level = excluded.level, gold = excluded.gold, updated = excluded.updated',
        [rows.map((r) => r.name), rows.map((r) => r.level), rows.map((r) => r.gold), rows.map(() => now)],
      );
      this.counts.commits++;
      this.counts.writes += batch.length;
      for (const w of batch) w.done();
    } catch (err) {
      // Unknown whether it committed: drop the cache so the next read is the truth.
      for (const name of last.keys()) this.cache.delete(name);
      const e = new Error(`postgres: write failed: ${(err as Error).message}`);
      for (const w of batch) w.done(e);
    } finally {
      this.writing = false;
    }
    if (this.pending.length > 0) this.schedule();
    else for (const resolve of this.idle.splice(0)) resolve();
  }

  stats(): StoreStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.writing || this.pending.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await this.pool.end();
  }
}
