/**
 * "Nothing is acknowledged that is not on disk": the discovery server on a
 * filesystem that fills up. A real `gamemesh discovery` process on a small
 * tmpfs, and an in-process server whose journal write is made to fail,
 * both under a window of puts in flight, a watcher and a reader. Asserted:
 * the server exits (code 1) when its journal fails; every acknowledged
 * write survives the restart; nothing a client saw (an answer, a Get, a
 * watch event) was ever unacknowledged; the failed writes get an error.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { DiscoveryClient } from '../src/discovery/client.js';
import { DiscoveryServer } from '../src/discovery/server.js';
import { asString } from '../src/discovery/values.js';
import { connectClient, startDiscovery, within } from './helpers/proc.js';

const silent = pino({ level: 'silent' });

interface Clients {
  writer: DiscoveryClient;
  watcher: DiscoveryClient;
  reader: DiscoveryClient;
}

/** Three clients that keep trying to reconnect for as long as the test runs, closed after it. */
async function threeClients(t: TestContext, addr: string): Promise<Clients> {
  const one = () => connectClient(t, { addr, reconnectMaxMs: 100_000, requestTimeoutMs: 5000 });
  return { writer: await one(), watcher: await one(), reader: await one() };
}

interface Observed {
  /** key -> value of every acknowledged put. */
  acked: Map<string, string>;
  /** Puts that failed, with the error code. */
  failed: Map<string, string>;
  /** Every value a watcher or a Get showed. */
  seen: Map<string, string>;
}

/**
 * Puts `fill/NNNNN` values of about `valueBytes`, WINDOW at a time, until a
 * put fails; meanwhile a watcher records every event and a reader Gets the
 * newest key in flight over and over.
 */
async function fillUntilFailure(clients: Clients, valueBytes: number, maxPuts: number, onAck: (acked: number) => void = () => {}): Promise<Observed> {
  const { writer, watcher, reader } = clients;
  const obs: Observed = { acked: new Map(), failed: new Map(), seen: new Map() };
  const w = await watcher.watch('fill/', { onEvent: (ev) => ev.type === 'put' && obs.seen.set(ev.kv.key, asString(ev.kv)) });
  const WINDOW = 16;
  let n = 0;
  let stop = false;
  let newest = '';
  const reading = (async () => {
    while (!stop) {
      try {
        const kv = newest ? await reader.get(newest) : undefined;
        if (kv) obs.seen.set(kv.key, asString(kv));
      } catch {
        // the server went away: the reader stops with the rest
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const pad = 'x'.repeat(valueBytes);
  const lane = async () => {
    while (!stop && n < maxPuts) {
      const key = `fill/${String(n).padStart(5, '0')}`;
      const value = `${n++} ${pad}`;
      newest = key;
      try {
        await writer.put(key, value);
        obs.acked.set(key, value);
        onAck(obs.acked.size);
      } catch (err) {
        obs.failed.set(key, (err as { code?: string }).code ?? String(err));
        stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  stop = true;
  await reading;
  w.stop();
  return obs;
}

function assertTruthful(obs: Observed, recovered: ReadonlyMap<string, string>): void {
  assert.ok(obs.failed.size > 0, 'some put failed');
  const lost = [...obs.acked].filter(([k, v]) => recovered.get(k) !== v).map(([k]) => k);
  assert.deepEqual(lost, [], `${lost.length} of ${obs.acked.size} acknowledged writes did not survive the restart`);
  const unacked = [...obs.seen].filter(([k, v]) => obs.acked.get(k) !== v).map(([k]) => k);
  assert.deepEqual(unacked, [], `clients saw ${unacked.length} writes that were never acknowledged`);
  for (const [key, code] of obs.failed) assert.ok(['unavailable', 'closed', 'timeout'].includes(code), `${key} failed with ${code}`);
}

async function readAll(t: TestContext, addr: string): Promise<Map<string, string>> {
  const c = await connectClient(t, { addr });
  const kvs = await c.list('fill/');
  await c.close();
  return new Map(kvs.map((kv) => [kv.key, asString(kv)]));
}

/** A tmpfs of `size` on a fresh directory, unmounted and removed after the test; undefined where mounting is not allowed. */
function smallTmpfs(t: TestContext, size: string): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gm-fulldisk-${process.pid}-`));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmdirSync(dir);
    if (process.env['CI']) throw new Error(`cannot mount a tmpfs (CI runs as root and must): ${(err as Error).message}`);
    return undefined;
  }
  // Lazy: the server this test started may still hold its files open when this hook runs; they go when it is killed.
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    fs.rmdirSync(dir);
  });
  return dir;
}

test('a real server on a full tmpfs: exits 1, acknowledged writes survive, nothing unacknowledged was seen', { timeout: 60_000 }, async (t) => {
  const mnt = smallTmpfs(t, '256k');
  if (!mnt) return t.skip('mounting a tmpfs needs root (not CI, so skipped; the in-process test below still runs)');
  const datafile = path.join(mnt, 'discovery.db');
  const server = await startDiscovery(t, { datafile });
  const clients = await threeClients(t, server.addr);
  const obs = await within(fillUntilFailure(clients, 1000, 100_000), 30_000, 'a put to fail on the full disk');
  const exit = await within(server.exited, 10_000, 'the server to exit');
  assert.deepEqual(exit, { code: 1, signal: null }, server.stderr);
  assert.match(server.stderr, /ENOSPC/, 'the journal failed for want of space');
  assert.ok(obs.acked.size > 100, `only ${obs.acked.size} puts before the disk was full`);
  await Promise.all(Object.values(clients).map((c) => c.close()));

  // Restarted on the same, still full, filesystem: it reads what is on disk, and serves it.
  const restarted = await startDiscovery(t, { datafile });
  assertTruthful(obs, await readAll(t, restarted.addr));
  t.diagnostic(`${obs.acked.size} acknowledged, ${obs.failed.size} refused, ${obs.seen.size} seen; all acknowledged ones recovered`);
});

test('in process: an injected journal failure is never acknowledged, served or sent to a watcher, also through stop()', { timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gm-journalfail-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const datafile = path.join(dir, 'discovery.db');
  const server = await new DiscoveryServer({ port: 0, datafile, logger: silent }).start();
  const fatal = new Promise<Error>((resolve) => server.once('fatal', resolve));
  // As `gamemesh discovery` does: stop on 'fatal'. stop() used to release the outbox up to the store's revision, sending the failed writes out.
  const stopped = fatal.then(() => server.stop());
  const addr = `127.0.0.1:${server.address.port}`;
  const clients = await threeClients(t, addr);

  // After 200 acknowledged puts, the journal's next write fails as on a full disk
  // (reaching into the server: a FileHandle offers no other way to make one write fail).
  const journal = (server as unknown as { persistence: { journal: { writev: (...a: unknown[]) => Promise<unknown> } } }).persistence.journal;
  const writev = journal.writev.bind(journal);
  let armed = false;
  journal.writev = async (...args: unknown[]) => {
    if (armed) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return writev(...args);
  };
  const obs = await within(fillUntilFailure(clients, 100, 10_000, (n) => (armed ||= n >= 200)), 15_000, 'a put to fail');
  assert.match((await within(fatal, 5000, 'the fatal event')).message, /ENOSPC/);
  await within(stopped, 5000, 'the server to stop');

  const restarted = await new DiscoveryServer({ port: 0, datafile, logger: silent }).start();
  t.after(() => restarted.stop());
  assertTruthful(obs, await readAll(t, `127.0.0.1:${restarted.address.port}`));
  assert.ok(fs.statSync(datafile + '.journal').size > 0);
});
