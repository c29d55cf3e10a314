import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { DiscoveryClient, DiscoveryServer, getString, type KvEvent } from '../src/discovery/index.js';
import { CloudConfig } from '../src/service/cloud-config.js';
import { waitFor } from './helpers/proc.js';

let server: DiscoveryServer;
let svc: DiscoveryClient;
let op: DiscoveryClient;
// Each test works under its own prefix, so tests cannot see each other's keys.
let n = 0;
const nextPrefix = (): string => `config${++n}/`;

before(async () => {
  server = await new DiscoveryServer({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) }).start();
  const addr = `127.0.0.1:${server.address.port}`;
  svc = await DiscoveryClient.connect({ addr, name: 'svc', connectTimeoutMs: 3000, requestTimeoutMs: 3000 });
  op = await DiscoveryClient.connect({ addr, name: 'operator', connectTimeoutMs: 3000, requestTimeoutMs: 3000 });
});

after(async () => {
  await svc?.close();
  await op?.close();
  await server?.stop();
});

/** A logger whose warnings the test can read. */
function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

async function open(prefix: string, logger = capture().logger): Promise<CloudConfig> {
  return CloudConfig.open(svc, { prefix, logger });
}

/**
 * Resolves once `cfg` has seen a write made after everything before it, so
 * the test can assert that something did not happen (events arrive in order).
 */
async function settled(cfg: CloudConfig): Promise<void> {
  let seen = false;
  const off = cfg.onChange('_marker', () => (seen = true));
  await op.put(`${cfg.prefix}_marker`, String(Date.now()));
  await waitFor(() => seen, 1000, 'the marker event');
  off();
}

test('a missing key reads as its default, written back once for operators to edit', async () => {
  const prefix = nextPrefix();
  const puts: string[] = [];
  const watch = await op.watch(prefix, { onEvent: (e: KvEvent) => void (e.type === 'put' && puts.push(e.kv.key)) });
  const cfg = await open(prefix);
  try {
    assert.equal(cfg.int('agent/heartbeat_sec', 5), 5);
    assert.equal(cfg.int('agent/heartbeat_sec', 5), 5);
    assert.equal(cfg.number('agent/ratio', 0.25), 0.25);
    assert.equal(cfg.string('agent/motd', 'hi there'), 'hi there');
    assert.equal(cfg.bool('agent/open', true), true);
    assert.deepEqual(cfg.json('agent/zones', { list: [1, 2] }), { list: [1, 2] });

    await waitFor(async () => (await getString(op, `${prefix}agent/zones`)) !== undefined, 1000, 'the defaults in the KV');
    assert.equal(await getString(op, `${prefix}agent/heartbeat_sec`), '5');
    assert.equal(await getString(op, `${prefix}agent/ratio`), '0.25');
    assert.equal(await getString(op, `${prefix}agent/motd`), 'hi there');
    assert.equal(await getString(op, `${prefix}agent/open`), 'true');
    assert.equal(await getString(op, `${prefix}agent/zones`), '{"list":[1,2]}');

    // Once written, it reads through the cache like any value.
    await waitFor(() => cfg.raw('agent/heartbeat_sec') === '5', 1000, 'the written default in the cache');

    // An operator deleting it does not make the service write it again.
    await op.delete(`${prefix}agent/heartbeat_sec`);
    await settled(cfg);
    assert.equal(cfg.int('agent/heartbeat_sec', 5), 5);
    await settled(cfg);
    assert.equal(await getString(op, `${prefix}agent/heartbeat_sec`), undefined);
    assert.equal(puts.filter((k) => k === `${prefix}agent/heartbeat_sec`).length, 1, 'written exactly once');
  } finally {
    cfg.close();
    watch.stop();
  }
});

test('an existing value is read from the cache and never overwritten by a default', async () => {
  const prefix = nextPrefix();
  await op.put(`${prefix}int`, ' 42 ');
  await op.put(`${prefix}neg`, '-7');
  await op.put(`${prefix}num`, '2.5e1');
  await op.put(`${prefix}off`, 'false');
  await op.put(`${prefix}on`, 'YES');
  await op.put(`${prefix}str`, '  spaced  ');
  await op.put(`${prefix}obj`, '{"rate":3,"names":["a"]}');
  await op.put(`${prefix}null`, 'null');
  const cfg = await open(prefix);
  try {
    assert.equal(cfg.int('int', 1), 42);
    assert.equal(cfg.int('neg', 1), -7);
    assert.equal(cfg.number('num', 1), 25);
    assert.equal(cfg.bool('off', true), false);
    assert.equal(cfg.bool('on', false), true);
    assert.equal(cfg.string('str', 'x'), '  spaced  ');
    assert.deepEqual(cfg.json('obj', { rate: 0, names: [] as string[] }), { rate: 3, names: ['a'] });
    assert.equal(cfg.json<unknown>('null', 'def'), null);
    await settled(cfg);
    assert.equal(await getString(op, `${prefix}int`), ' 42 ');
    assert.equal(await getString(op, `${prefix}str`), '  spaced  ');
  } finally {
    cfg.close();
  }
});

test('bad values log a warning and fall back to the default, leaving the KV alone', async () => {
  const prefix = nextPrefix();
  await op.put(`${prefix}int`, 'abc');
  await op.put(`${prefix}frac`, '1.5');
  await op.put(`${prefix}num`, 'fast');
  await op.put(`${prefix}empty`, '');
  await op.put(`${prefix}bool`, 'maybe');
  await op.put(`${prefix}json`, '{broken');
  await op.put(`${prefix}shape`, '"a string"');
  const { logger, lines } = capture();
  const cfg = await open(prefix, logger);
  try {
    assert.equal(cfg.int('int', 3), 3);
    assert.equal(cfg.int('int', 3), 3);
    assert.equal(cfg.int('frac', 3), 3);
    assert.equal(cfg.number('num', 0.5), 0.5);
    assert.equal(cfg.number('empty', 0.5), 0.5);
    assert.equal(cfg.bool('bool', true), true);
    assert.deepEqual(cfg.json('json', { a: 1 }), { a: 1 });
    const isObject = (v: unknown): v is { a: number } => typeof v === 'object' && v !== null;
    assert.deepEqual(cfg.json('shape', { a: 2 }, isObject), { a: 2 });

    const warned = lines.map((l) => [l['level'], l['key'], l['value']]);
    assert.deepEqual(warned, [
      [40, `${prefix}int`, 'abc'],
      [40, `${prefix}frac`, '1.5'],
      [40, `${prefix}num`, 'fast'],
      [40, `${prefix}empty`, ''],
      [40, `${prefix}bool`, 'maybe'],
      [40, `${prefix}json`, '{broken'],
      [40, `${prefix}shape`, '"a string"'],
    ]);
    await settled(cfg);
    assert.equal(await getString(op, `${prefix}int`), 'abc', 'a bad value is the operator’s to fix');
  } finally {
    cfg.close();
  }
});

test("another client's change reaches onChange within a second; unsubscribing stops it", async () => {
  const prefix = nextPrefix();
  const cfg = await open(prefix);
  try {
    const seen: (string | undefined)[] = [];
    const off = cfg.onChange('agent/heartbeat_sec', (v) => seen.push(v));
    const other: (string | undefined)[] = [];
    cfg.onChange('agent/other', (v) => other.push(v));

    await op.put(`${prefix}agent/heartbeat_sec`, '5');
    await waitFor(() => seen.length === 1, 1000, 'the change');
    assert.equal(cfg.int('agent/heartbeat_sec', 10), 5);

    await op.delete(`${prefix}agent/heartbeat_sec`);
    await waitFor(() => seen.length === 2, 1000, 'the delete');
    assert.deepEqual(seen, ['5', undefined]);
    assert.equal(cfg.int('agent/heartbeat_sec', 10), 10);

    off();
    await op.put(`${prefix}agent/heartbeat_sec`, '6');
    await settled(cfg);
    assert.deepEqual(seen, ['5', undefined]);
    assert.deepEqual(other, [], 'listeners hear only their key');
  } finally {
    cfg.close();
  }
});

test('watchInt: the current value at once, then each change, bad values as the default', async () => {
  const prefix = nextPrefix();
  await op.put(`${prefix}agent/heartbeat_sec`, '3');
  const cfg = await open(prefix);
  try {
    const got: number[] = [];
    const off = cfg.watchInt('agent/heartbeat_sec', 10, (v) => got.push(v));
    assert.deepEqual(got, [3]);

    await op.put(`${prefix}agent/heartbeat_sec`, '5');
    await waitFor(() => got.length === 2, 1000, 'the new value');
    await op.put(`${prefix}agent/heartbeat_sec`, '5');
    await op.put(`${prefix}agent/heartbeat_sec`, 'abc');
    await waitFor(() => got.length === 3, 1000, 'the fallback');
    await op.put(`${prefix}agent/heartbeat_sec`, '10');
    await op.delete(`${prefix}agent/heartbeat_sec`);
    await op.put(`${prefix}agent/heartbeat_sec`, '7');
    await waitFor(() => got.length === 4, 1000, 'the last value');
    assert.deepEqual(got, [3, 5, 10, 7], 'called only when the value changes');

    off();
    await op.put(`${prefix}agent/heartbeat_sec`, '8');
    await settled(cfg);
    assert.deepEqual(got, [3, 5, 10, 7]);

    // A watched missing key gets its default written back, and that echo is no change.
    const bools: boolean[] = [];
    cfg.watchBool('gate/open', false, (v) => bools.push(v));
    const zones: { z: number[] }[] = [];
    cfg.watchJson('gate/zones', { z: [1] }, (v) => zones.push(v));
    await waitFor(async () => (await getString(op, `${prefix}gate/zones`)) === '{"z":[1]}', 1000, 'the written default');
    await op.put(`${prefix}gate/open`, 'true');
    await op.put(`${prefix}gate/zones`, '{"z":[1,2]}');
    await waitFor(() => bools.length === 2 && zones.length === 2, 1000, 'both changes');
    assert.deepEqual(bools, [false, true]);
    assert.deepEqual(zones, [{ z: [1] }, { z: [1, 2] }]);
  } finally {
    cfg.close();
  }
});

test('close stops the watch: no more callbacks, no more writes', async () => {
  const prefix = nextPrefix();
  const cfg = await open(prefix);
  const seen: (string | undefined)[] = [];
  cfg.onChange('k', (v) => seen.push(v));
  await op.put(`${prefix}k`, '1');
  await waitFor(() => seen.length === 1, 1000, 'the first change');
  cfg.close();
  cfg.close();

  await op.put(`${prefix}k`, '2');
  assert.equal(cfg.int('never/written', 4), 4);
  // Watch the same prefix from a live CloudConfig to know the writes above have been delivered.
  const probe = await open(prefix);
  try {
    await settled(probe);
    assert.deepEqual(seen, ['1']);
    assert.equal(await getString(op, `${prefix}never/written`), undefined);
  } finally {
    probe.close();
  }
});
