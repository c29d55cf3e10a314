import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { START, type PlayerState } from './rules.js';
import type { PlayerStore, StoreStats } from './store.js';

interface Row {
  name: string;
  level: number;
  gold: number;
}

interface PendingWrite {
  readonly state: PlayerState;
  readonly done: (err?: Error) => void;
}

/**
 * Players in SQLite, the default: no server to run. Reads come from memory
 * after the first load. Writes of one tick are committed in one transaction
 * (one fsync), and each write's promise resolves only after that commit, so
 * a reply sent after `save` resolves is never lost to a crash.
 */
export class SqliteStore implements PlayerStore {
  private readonly db: Database.Database;
  private readonly cache = new Map<string, PlayerState>();
  private pending: PendingWrite[] = [];
  private scheduled = false;
  private readonly counts = { writes: 0, commits: 0 };
  private readonly selectStmt: Database.Statement<[string], Row>;
  private readonly upsertStmt: Database.Statement<[string, number, number, number]>;

  constructor(path: string) {
    if (path !== ':memory:') privateFiles(path);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed transaction survives power loss too, not only kill -9.
    this.db.pragma('synchronous = FULL');
    this.db.exec('CREATE TABLE IF NOT EXISTS players (name TEXT PRIMARY KEY, level INTEGER NOT NULL, gold INTEGER NOT NULL, updated INTEGER NOT NULL)');
    this.selectStmt = this.db.prepare('SELECT name, level, gold FROM players WHERE name = ?');
    this.upsertStmt = this.db.prepare('INSERT INTO players (name, level, gold, updated) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET level = excluded.level, gold = excluded.gold, updated = excluded.updated');
  }

  /** The player, created at level 1 on first sight (and saved). */
  async load(name: string): Promise<PlayerState> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const row = this.selectStmt.get(name);
    if (row) {
      const state = { name: row.name, level: row.level, gold: row.gold };
      this.cache.set(name, state);
      return state;
    }
    const created = { name, ...START };
    await this.save(created);
    return this.cache.get(name) ?? created;
  }

  /** Resolves once the state is committed to disk. */
  save(state: PlayerState): Promise<void> {
    this.cache.set(state.name, state);
    return new Promise((resolve, reject) => {
      this.pending.push({ state, done: (err) => (err ? reject(err) : resolve()) });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const now = Date.now();
    try {
      this.db.transaction(() => {
        for (const w of batch) this.upsertStmt.run(w.state.name, w.state.level, w.state.gold, now);
      })();
    } catch (err) {
      // The cache is ahead of the disk now; drop it so the next read is the truth.
      for (const w of batch) this.cache.delete(w.state.name);
      for (const w of batch) w.done(err as Error);
      return;
    }
    this.counts.commits++;
    this.counts.writes += batch.length;
    for (const w of batch) w.done();
  }

  forget(name: string): void {
    if (!this.pending.some((w) => w.state.name === name)) this.cache.delete(name);
  }

  stats(): StoreStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.pending.length > 0) this.flush();
    this.db.close();
  }
}

/**
 * Players' data is nobody else's: the folder is made 0700 and the database
 * 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
 * database's mode); files an older run left readable are made private.
 */
function privateFiles(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
}
