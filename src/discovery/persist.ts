import { chmodSync, closeSync, existsSync, ftruncateSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { asBytes } from '../wire/registry.js';
import { JournalEntryCodec, KeyValueCodec, SnapshotHeaderCodec, type JournalEntry } from './messages.js';
import { encodeRecord, readRecords } from './records.js';
import type { KeyValue } from './types.js';
import { metricsOn } from '../observe/metrics.js';
import { fsyncSeconds, journalBatch, snapshotSeconds } from './metrics.js';

export interface PersistOptions {
  /** fdatasync each group commit (default true). Without it a write survives kill -9 but not power loss. */
  fsync?: boolean;
  /** Compact the journal into a snapshot once it is this large and larger than the last snapshot. */
  compactBytes?: number;
  warn?: (msg: string) => void;
}

export interface Recovered {
  revision: number;
  kvs: Map<string, KeyValue>;
  journalEntries: number;
}

export interface SnapshotSource {
  revision: number;
  kvs: Iterable<KeyValue>;
}

/**
 * Durable storage for the discovery server: `PATH` holds the last snapshot,
 * `PATH.journal` every commit since. Commits are buffered and written with one
 * write and one fdatasync per tick (group commit); `onDurable` reports the
 * highest revision that is on disk, and only then does the server answer.
 * Compaction writes `PATH.tmp`, syncs it, renames it over `PATH`, then empties
 * the journal, so a crash at any point leaves a readable pair of files.
 *
 * A failed write or fsync is final: what it carried is never reported
 * durable, nothing is written after it (a record after a torn one would be
 * unreadable, and so lost, on recovery), and a torn tail is cut off where
 * possible. The files hold secrets (config/login/jwt_secret), so they are
 * 0600 and their folder, when created here, 0700.
 */
export class Persistence {
  private buffer: Buffer[] = [];
  private bufferRev = 0;
  private flushing = false;
  private journalBytes: number;
  private snapshotBytes: number;
  private closing: Promise<void> | undefined;
  private failed: Error | undefined;
  private readonly fsync: boolean;
  private readonly compactBytes: number;
  onDurable: (revision: number) => void = () => {};
  onFailure: (err: Error) => void = () => {};
  snapshotSource: (() => SnapshotSource) | undefined;

  private constructor(
    readonly path: string,
    private readonly journal: FileHandle,
    journalBytes: number,
    snapshotBytes: number,
    options: PersistOptions,
  ) {
    this.journalBytes = journalBytes;
    this.snapshotBytes = snapshotBytes;
    this.fsync = options.fsync ?? true;
    this.compactBytes = options.compactBytes ?? 32 * 1024 * 1024;
  }

  static async open(path: string, options: PersistOptions = {}): Promise<{ persistence: Persistence; recovered: Recovered }> {
    const warn = options.warn ?? (() => {});
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    privateModes(path, warn);
    const { recovered, journalBytes, snapshotBytes } = recover(path, warn);
    const journal = await open(`${path}.journal`, 'a', 0o600);
    return { persistence: new Persistence(path, journal, journalBytes, snapshotBytes, options), recovered };
  }

  /** Set once a write failed; nothing is written or reported durable after it. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** Queue one commit; it is durable when onDurable reports its revision. */
  append(entry: JournalEntry): void {
    if (this.failed) throw this.failed;
    const record = encodeRecord(JournalEntryCodec.encode(entry));
    this.buffer.push(record);
    this.bufferRev = entry.revision;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.flushLoop());
    }
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.buffer.length > 0 && !this.failed) {
        const batch = this.buffer;
        const rev = this.bufferRev;
        this.buffer = [];
        let bytes = 0;
        for (const b of batch) bytes += b.length;
        await writeAll(this.journal, batch);
        const syncStart = metricsOn() ? performance.now() : 0;
        if (this.fsync) await this.journal.datasync();
        if (syncStart) {
          journalBatch.observe(batch.length);
          if (this.fsync) fsyncSeconds.observeSince(syncStart);
        }
        this.journalBytes += bytes;
        this.onDurable(rev);
        if (this.snapshotSource && this.journalBytes >= this.compactBytes && this.journalBytes > this.snapshotBytes) {
          this.onDurable(await this.compact());
        }
      }
    } catch (err) {
      this.failed = err as Error;
      this.buffer = [];
      // Cut a torn record off (truncating needs no free space), so the journal ends on a whole record.
      await this.journal.truncate(this.journalBytes).catch(() => {});
      this.onFailure(this.failed);
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Writes a snapshot of the source's current state, then empties the journal.
   * Returns the snapshot's revision: everything up to it is now durable.
   */
  async compact(): Promise<number> {
    const source = this.snapshotSource;
    if (!source) return 0;
    // The snapshot is taken synchronously, so it is one consistent revision.
    // Records buffered before this point are inside it; later ones are newer
    // and go to the emptied journal.
    const started = performance.now();
    const { revision, kvs } = source();
    const covered = this.buffer.length;
    const records: Buffer[] = [];
    let count = 0;
    for (const kv of kvs) {
      records.push(encodeRecord(KeyValueCodec.encode({ key: kv.key, value: kv.value, create_rev: kv.createRev, mod_rev: kv.modRev })));
      count++;
    }
    records.unshift(encodeRecord(SnapshotHeaderCodec.encode({ revision, count })));
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await writeAll(fh, records);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    await syncDir(dirname(this.path));
    await this.journal.truncate(0);
    if (this.fsync) await this.journal.sync();
    this.snapshotBytes = records.reduce((n, r) => n + r.length, 0);
    this.journalBytes = 0;
    this.buffer.splice(0, covered);
    snapshotSeconds.observeSince(started);
    return revision;
  }

  get stats(): { journalBytes: number; snapshotBytes: number } {
    return { journalBytes: this.journalBytes, snapshotBytes: this.snapshotBytes };
  }

  /** Flushes what is buffered (unless a write failed) and closes the journal. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.flushing || (this.buffer.length > 0 && !this.failed)) {
        if (!this.flushing) {
          this.flushing = true;
          await this.flushLoop();
        } else {
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      await this.journal.close();
    })();
    return this.closing;
  }
}

async function writeAll(fh: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending);
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    pending = rest;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

/** Files made by an older version (0644) are made private; a folder others can enter is reported, not changed (it may not be ours alone). */
function privateModes(path: string, warn: (msg: string) => void): void {
  for (const file of [path, `${path}.journal`, `${path}.tmp`]) {
    if (existsSync(file) && (statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  }
  const dir = dirname(path);
  if ((statSync(dir).mode & 0o077) !== 0) warn(`${dir} is open to other users (mode ${(statSync(dir).mode & 0o777).toString(8)}); the data files in it are 0600, but consider chmod 700 ${dir}`);
}

function recover(path: string, warn: (msg: string) => void): { recovered: Recovered; journalBytes: number; snapshotBytes: number } {
  const kvs = new Map<string, KeyValue>();
  let revision = 0;
  let snapshotBytes = 0;
  if (existsSync(path)) {
    const data = readFileSync(path);
    snapshotBytes = data.length;
    const { records, tailError } = readRecords(data);
    const [head, ...rest] = records;
    if (tailError || !head) throw new Error(`snapshot ${path} is corrupt (${tailError ?? 'empty'}); refusing to start over it`);
    const header = SnapshotHeaderCodec.decode(head);
    if (header.count !== rest.length) throw new Error(`snapshot ${path} is corrupt: header says ${header.count} keys, found ${rest.length}`);
    revision = header.revision;
    for (const r of rest) {
      const kv = KeyValueCodec.decode(r);
      kvs.set(kv.key, { key: kv.key, value: asBytes(kv.value), createRev: kv.create_rev, modRev: kv.mod_rev });
    }
  }
  const journalPath = `${path}.journal`;
  let journalBytes = 0;
  let journalEntries = 0;
  if (existsSync(journalPath)) {
    const data = readFileSync(journalPath);
    const { records, validBytes, tailError } = readRecords(data);
    for (const r of records) {
      const entry = JournalEntryCodec.decode(r);
      if (entry.revision <= revision) continue;
      revision = entry.revision;
      journalEntries++;
      for (const m of entry.mutations) {
        if (m.delete) kvs.delete(m.key);
        else kvs.set(m.key, { key: m.key, value: asBytes(m.value), createRev: m.create_rev || entry.revision, modRev: entry.revision });
      }
    }
    if (tailError) {
      warn(`journal ${journalPath}: dropping ${data.length - validBytes} bytes after the last whole record (${tailError})`);
      const fd = openSync(journalPath, 'r+');
      ftruncateSync(fd, validBytes);
      closeSync(fd);
    }
    journalBytes = validBytes;
  }
  return { recovered: { revision, kvs, journalEntries }, journalBytes, snapshotBytes };
}
