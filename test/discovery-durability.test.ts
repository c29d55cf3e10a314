/**
 * Durability of the discovery server process: every acknowledged write is on
 * disk, so it survives kill -9 (also when the kill lands while writes are in
 * flight), and SIGTERM shuts down cleanly with the data intact.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { asString } from '../src/discovery/values.js';
import type { DiscoveryClient } from '../src/discovery/client.js';
import { connectClient, startDiscovery, tempDir, within, type Cleanup, type DiscoveryProc } from './helpers/proc.js';

/** Reads every key under `prefix` from a freshly started server on `datafile`. */
async function readBack(t: Cleanup, datafile: string, prefix: string): Promise<{ server: DiscoveryProc; data: Map<string, string> }> {
  const server = await startDiscovery(t, { datafile });
  const client = await connectClient(t, { addr: server.addr });
  const kvs = await client.list(prefix);
  await client.close();
  return { server, data: new Map(kvs.map((kv) => [kv.key, asString(kv)])) };
}

function assertAllPresent(expected: ReadonlyMap<string, string>, actual: ReadonlyMap<string, string>): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [key, value] of expected) {
    const got = actual.get(key);
    if (got === undefined) missing.push(key);
    else if (got !== value) wrong.push(`${key}: expected ${value}, got ${got}`);
  }
  assert.deepEqual(missing, [], `${missing.length} acknowledged keys lost`);
  assert.deepEqual(wrong, [], `${wrong.length} acknowledged keys have the wrong value`);
}

async function putAll(client: DiscoveryClient, entries: [string, string][], batch = 100): Promise<void> {
  for (let i = 0; i < entries.length; i += batch) {
    const revs = await Promise.all(entries.slice(i, i + batch).map(([k, v]) => client.put(k, v)));
    for (const r of revs) assert.ok(r > 0, `put returned revision ${r}`);
  }
}

test('1,000 acknowledged puts survive kill -9 of the server', { timeout: 30_000 }, async (t) => {
  const datafile = path.join(tempDir(t), 'discovery.db');
  const server = await startDiscovery(t, { datafile });
  const client = await connectClient(t, { addr: server.addr });

  const salt = Math.random().toString(36).slice(2);
  const expected = new Map<string, string>();
  for (let i = 0; i < 1000; i++) expected.set(`k/${String(i).padStart(4, '0')}`, `v${i}-${salt}`);
  await putAll(client, [...expected]);

  const exit = await server.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  await client.close();

  const { server: restarted, data } = await readBack(t, datafile, 'k/');
  assert.equal(data.size, 1000);
  assertAllPresent(expected, data);
  const recovered = restarted.logs().find((l) => l['msg'] === 'recovered');
  assert.equal(recovered?.['keys'], 1000, 'the restarted server logs the recovered key count');
});

test('kill -9 while puts are in flight loses none that were acknowledged', { timeout: 30_000 }, async (t) => {
  const datafile = path.join(tempDir(t), 'discovery.db');
  const acked = new Map<string, string>();
  const ROUNDS = 3;
  const WINDOW = 64;

  for (let round = 0; round < ROUNDS; round++) {
    const server = await startDiscovery(t, { datafile });
    const client = await connectClient(t, { addr: server.addr });
    // Kill after a random number of acknowledgements, with a full window of puts outstanding.
    const target = 100 + Math.floor(Math.random() * 300);
    let ackedThisRound = 0;
    let inflight = 0;
    let inflightAtKill = -1;
    let n = 0;
    const settled: Promise<void>[] = [];
    await within(
      new Promise<void>((killed) => {
        const pump = () => {
          while (inflightAtKill < 0 && inflight < WINDOW) {
            const key = `r${round}/${String(n).padStart(6, '0')}`;
            const value = `round ${round} put ${n}`;
            n++;
            inflight++;
            settled.push(
              client.put(key, value).then(
                () => {
                  inflight--;
                  acked.set(key, value);
                  ackedThisRound++;
                  if (inflightAtKill < 0 && ackedThisRound >= target) {
                    inflightAtKill = inflight;
                    process.kill(server.pid, 'SIGKILL');
                    killed();
                  } else {
                    pump();
                  }
                },
                () => {
                  inflight--;
                },
              ),
            );
          }
        };
        pump();
      }),
      15_000,
      `${target} acknowledged puts in round ${round}`,
    );
    assert.ok(inflightAtKill > 0, `the kill should land with puts in flight (had ${inflightAtKill})`);
    const exit = await within(server.exited, 5000, 'the killed server to exit');
    assert.equal(exit.signal, 'SIGKILL');
    // Puts still waiting now fail (connection lost / client closed); none may hang.
    await client.close();
    await within(Promise.all(settled), 5000, 'every put to settle');
    assert.equal(inflight, 0);
  }

  const { data } = await readBack(t, datafile, 'r');
  assert.ok(acked.size >= ROUNDS * 100);
  assertAllPresent(acked, data);
});

test('SIGTERM shuts the server down cleanly (exit 0) and the data survives', { timeout: 30_000 }, async (t) => {
  const datafile = path.join(tempDir(t), 'discovery.db');
  const server = await startDiscovery(t, { datafile });
  const client = await connectClient(t, { addr: server.addr });
  const expected = new Map<string, string>();
  for (let i = 0; i < 300; i++) expected.set(`term/${i}`, `value ${i}`);
  await putAll(client, [...expected]);
  await client.delete('term/0');
  expected.delete('term/0');

  // The client stays connected through the shutdown: a live client must not hold it up.
  const exit = await server.kill('SIGTERM', 5000);
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr}`);
  assert.ok(
    server.logs().some((l) => l['msg'] === 'discovery stopped'),
    'the server logs that it stopped',
  );
  await client.close();

  const { data } = await readBack(t, datafile, 'term/');
  assert.equal(data.size, 299);
  assert.equal(data.has('term/0'), false, 'the delete survived too');
  assertAllPresent(expected, data);
});
