import pg from 'pg';
import { START, type PlayerState } from './rules.js';
import type { PlayerStore, StoreStats } from './store.js';

interface PendingWrite {
  readonly state: PlayerState;
  /** The row's version once this write commits. */
  readonly version: number;
  readonly done: (err?: Error) => void;
}

/** A write refused because the row changed elsewhere since this process read it. */
export class WriteConflict extends Error {
  override name = 'WriteConflict';
}

/** Most rows in one statement; a bigger group is committed in several. */
const MAX_GROUP = 5000;

/**
 * Players in PostgreSQL (`--db postgres://...`). The same promise as
 * SQLite: writes waiting while a commit is under way are committed together
 * in the next one, as one multi-row upsert (one WAL flush), and each `save`
 * resolves after its commit. With one commit in flight at a time, a
 * player's writes commit in the order they were made.
 *
 * Several processes may share the table (two game instances), so each row
 * has a version and a write applies only over the version this process
 * read: a stale write (from a process cut off by a partition, whose write
 * reaches the server late) is refused with WriteConflict instead of
 * overwriting newer data, and that player is read again next time.
 */
export class PgStore implements PlayerStore {
  private readonly cache = new Map<string, PlayerState>();
  /** The row version each cached player's next write builds on (0: no row seen). */
  private readonly versions = new Map<string, number>();
  private inFlight = new Set<string>();
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
      // Two games starting at once race CREATE TABLE IF NOT EXISTS (a unique violation in pg_type): one simple query is one
      // implicit transaction, and the advisory lock it takes first makes the others wait until it commits.
      await pool.query(
        "SELECT pg_advisory_xact_lock(hashtext('gamemesh.players')); " +
          'CREATE TABLE IF NOT EXISTS players (name TEXT PRIMARY KEY, level INTEGER NOT NULL, gold BIGINT NOT NULL, updated BIGINT NOT NULL, version BIGINT NOT NULL DEFAULT 0); ' +
          'ALTER TABLE players ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0',
      );
    } catch (err) {
      await pool.end();
      throw new Error(`postgres: cannot prepare the players table: ${(err as Error).message}`);
    }
    return new PgStore(pool);
  }

  async load(name: string): Promise<PlayerState> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const res = await this.pool.query<{ name: string; level: number; gold: string; version: string }>('SELECT name, level, gold, version FROM players WHERE name = $1', [name]);
    const row = res.rows[0];
    // A save may have landed while the query ran: the cache is newer than the disk then.
    const now = this.cache.get(name);
    if (now) return now;
    if (row) {
      const state = { name: row.name, level: row.level, gold: Number(row.gold) };
      this.cache.set(name, state);
      this.versions.set(name, Number(row.version));
      return state;
    }
    this.versions.set(name, 0);
    const created = { name, ...START };
    await this.save(created);
    return this.cache.get(name) ?? created;
  }

  forget(name: string): void {
    if (this.inFlight.has(name) || this.pending.some((w) => w.state.name === name)) return;
    this.cache.delete(name);
    this.versions.delete(name);
  }

  save(state: PlayerState): Promise<void> {
    this.cache.set(state.name, state);
    const version = (this.versions.get(state.name) ?? 0) + 1;
    this.versions.set(state.name, version);
    return new Promise((resolve, reject) => {
      this.pending.push({ state, version, done: (err) => (err ? reject(err) : resolve()) });
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
    // Per player: the last write is what the row must hold, over the version before the first.
    const rows = new Map<string, { state: PlayerState; version: number; expected: number }>();
    for (const w of batch) {
      const row = rows.get(w.state.name);
      rows.set(w.state.name, { state: w.state, version: w.version, expected: row ? row.expected : w.version - 1 });
    }
    this.inFlight = new Set(rows.keys());
    const list = [...rows.values()];
    const now = Date.now();
    try {
      const res = await this.pool.query<{ name: string }>(
        'WITH v (name, level, gold, updated, version, expected) AS (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])) ' +
          'INSERT INTO players (name, level, gold, updated, version) SELECT name, level, gold, updated, version FROM v ' +
          'ON CONFLICT (name) DO UPDATE SET level = excluded.level, gold = excluded.gold, updated = excluded.updated, version = excluded.version ' +
          'WHERE players.version = (SELECT expected FROM v WHERE v.name = excluded.name) RETURNING name',
        [list.map((r) => r.state.name), list.map((r) => r.state.level), list.map((r) => r.state.gold), list.map(() => now), list.map((r) => r.version), list.map((r) => r.expected)],
      );
      const applied = new Set(res.rows.map((r) => r.name));
      this.counts.commits++;
      for (const w of batch) {
        if (applied.has(w.state.name)) {
          this.counts.writes++;
          w.done();
        } else {
          this.stale(w.state.name);
          w.done(new WriteConflict(`postgres: ${w.state.name} changed elsewhere since it was read here; read it again`));
        }
      }
    } catch (err) {
      // Unknown whether it committed: drop the cache so the next read is the truth.
      for (const name of rows.keys()) this.stale(name);
      const e = new Error(`postgres: write failed: ${(err as Error).message}`);
      for (const w of batch) w.done(e);
    } finally {
      this.inFlight = new Set();
      this.writing = false;
    }
    if (this.pending.length > 0) this.schedule();
    else for (const resolve of this.idle.splice(0)) resolve();
  }

  /** The next read of this player goes to the database. */
  private stale(name: string): void {
    this.cache.delete(name);
    this.versions.delete(name);
  }

  stats(): StoreStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.writing || this.pending.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await this.pool.end();
  }
}
