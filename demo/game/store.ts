import type { PlayerState } from './rules.js';

export interface StoreStats {
  /** Writes committed. */
  writes: number;
  /** Transactions that committed them: fewer than writes when they were grouped. */
  commits: number;
}

/**
 * Where the game keeps players. Both backends hold the same promise: reads
 * come from memory after the first load, writes that arrive together are
 * committed together, and `save` resolves only once its write is committed,
 * so an answer sent after it is never lost to a crash.
 *
 * This is the shape the docs recommend for a service's own data
 * (docs/scaling.md): a small interface, an embedded default, a server
 * database for production.
 */
export interface PlayerStore {
  /** The player, created at level 1 on first sight (and saved). */
  load(name: string): Promise<PlayerState>;
  /** Resolves once the state is committed. */
  save(state: PlayerState): Promise<void>;
  /**
   * Drops the cached player unless a write of it is pending, so the next
   * load reads the database: on sign-in, since another instance may have
   * served the player meanwhile.
   */
  forget(name: string): void;
  stats(): StoreStats;
  /** Commits what is pending, then closes. */
  close(): Promise<void>;
}

/** `postgres://...` (or postgresql://) is PostgreSQL; anything else is a SQLite file (or :memory:). */
export async function openStore(db: string): Promise<PlayerStore> {
  if (/^postgres(ql)?:\/\//.test(db)) {
    const { PgStore } = await import('./store-pg.js');
    return PgStore.open(db);
  }
  const { SqliteStore } = await import('./store-sqlite.js');
  return new SqliteStore(db);
}
