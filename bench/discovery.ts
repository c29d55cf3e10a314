/**
 * Discovery service throughput and propagation, with the server in its own
 * process (as in production) and every client in the bench process.
 *
 *   (a) durable puts (fsync on, the default): serial (1 in flight) and
 *       pipelined (1,000 in flight) on one connection; 64-byte values over
 *       1,000 keys;
 *   (b) cached reads: `watch.get(key)` and `client.cached(key)` on a watched
 *       prefix of 1,000 keys (no network);
 *   (c) change propagation: one writer and 100 watchers, each on its own
 *       client connection, all in the bench process; for each of CHANGES
 *       serial puts, the time from just before `put()` to each watcher's
 *       onEvent (one clock: performance.now() in this process);
 *   (d) 1,000 registrations, sent at once over 10 connections (100 each),
 *       until all of 10 `watchServices()` watchers (10 more connections)
 *       list all 1,000; then the 1,000 deregistrations until all list none.
 *
 * Baseline in the same run: a raw node:net framed echo (src/wire/frame.ts
 * framing, 64-byte body, server in its own process), serial and 1,000
 * pipelined: the round-trip ceiling for (a).
 *
 * Backends: each entry of BACKENDS starts a server and hands out connected
 * `Discovery` clients; every figure is measured per backend and printed as
 * one column: the built-in server, and etcd (one member, EtcdDiscovery
 * clients) when /usr/bin/etcd exists, with the built-in/etcd ratios.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiscoveryClient } from '../src/discovery/client.js';
import { EtcdDiscovery } from '../src/discovery/etcd.js';
import type { Discovery, KvEvent, ServiceDesc, ServiceEvent } from '../src/discovery/types.js';
import { CpuLoad, drive, driveNote, freePort, loadNote, percentile, profArgs, RawEchoClient, ROOT, sortedCopy, startExternal, startFrameEcho, startNode, type LoadResult } from './harness.js';
import { DEFAULT_MS, fmtInt, fmtNum, isMain, measure, printTable } from './lib.js';

/** A running discovery backend. */
export interface BackendInstance {
  /** One line for the notes: where the server runs and how it stores data. */
  readonly where: string;
  /** A new client connection. */
  connect(name: string): Promise<Discovery>;
  stop(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  start(): Promise<BackendInstance>;
}

function builtIn(fsync: boolean): Backend {
  return {
    name: fsync ? 'built-in' : 'built-in, --no-fsync',
    async start() {
      const dir = await mkdtemp(path.join(tmpdir(), 'gm-bench-sd-'));
      const datafile = path.join(dir, 'db');
      const args = [path.join(ROOT, 'bin', 'gamemesh.js'), 'discovery', '--addr', '127.0.0.1:0', '--datafile', datafile, ...(fsync ? [] : ['--no-fsync'])];
      const child = await startNode(args, /^discovery listening on (.+):(\d+)$/, { execArgv: profArgs(`discovery-server${fsync ? '' : '-nofsync'}`) }).catch(async (err: unknown) => {
        await rm(dir, { recursive: true, force: true });
        throw err;
      });
      const addr = `${child.ready[1]}:${child.ready[2]}`;
      return {
        where: `\`gamemesh discovery --datafile ${path.join(tmpdir(), '…', 'db')}${fsync ? '' : ' --no-fsync'}\` in its own process${fsync ? ' (fsync on, the default)' : ''}`,
        connect: (name) => DiscoveryClient.connect({ addr, name }),
        async stop() {
          await child.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

const ETCD_BIN = process.env['GAMEMESH_ETCD_BIN'] ?? '/usr/bin/etcd';

/** One etcd member (WAL fsync on, its default) with a fresh data dir; clients are EtcdDiscovery. */
function etcd(): Backend {
  return {
    name: 'etcd',
    async start() {
      const dir = await mkdtemp(path.join(tmpdir(), 'gm-bench-etcd-'));
      const [client, peer] = [await freePort(), await freePort()];
      const c = `http://127.0.0.1:${client}`;
      const p = `http://127.0.0.1:${peer}`;
      const args = ['--name', 'bench', '--data-dir', dir, '--listen-client-urls', c, '--advertise-client-urls', c, '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `bench=${p}`];
      const child = await startExternal(ETCD_BIN, args, 'ready to serve client requests').catch(async (err: unknown) => {
        await rm(dir, { recursive: true, force: true });
        throw err;
      });
      return {
        where: `etcd ${etcdVersion()} (one member, its own process, data in a temp dir, WAL fsync on), EtcdDiscovery clients (etcd3 over gRPC)`,
        connect: (name) => EtcdDiscovery.connect({ endpoints: [`127.0.0.1:${client}`], name }),
        async stop() {
          await child.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

function etcdVersion(): string {
  try {
    return /etcd Version: (\S+)/.exec(execFileSync(ETCD_BIN, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/**
 * The built-in server beside etcd (when /usr/bin/etcd exists; BENCH_SD_ETCD=0 leaves it out),
 * measured in the same run; add a backend here to get another column.
 */
export const BACKENDS: readonly Backend[] = [
  builtIn(true),
  ...(process.env['BENCH_SD_NOFSYNC'] === '1' ? [builtIn(false)] : []),
  ...(existsSync(ETCD_BIN) && process.env['BENCH_SD_ETCD'] !== '0' ? [etcd()] : []),
];

const PIPELINE = 1000;
const KEYS = 1000;
const VALUE = Buffer.alloc(64, 0x61);
const WATCHERS = 100;
/** Serial puts watched by WATCHERS clients (after 30 unrecorded warm-up changes). */
const CHANGES = Math.max(100, Math.round(300 * Math.min(1, DEFAULT_MS / 1000)));
const REGISTRATIONS = 1000;
const REG_CONNS = 10;
const REG_WATCHERS = 10;
const REG_ROUNDS = 5;
const CACHE_MS = Math.round(DEFAULT_MS * 0.8);

interface Results {
  setSerial: LoadResult;
  setPipelined: LoadResult;
  watchGet: number;
  clientCached: number;
  putAck: { p50: number; p99: number };
  propEach: { p50: number; p99: number; n: number };
  propAll: { p50: number; p99: number; n: number };
  regAll: number[];
  deregAll: number[];
  regAcked: number[];
}

async function connectMany(inst: BackendInstance, prefix: string, n: number): Promise<Discovery[]> {
  // A few at a time: 100 simultaneous handshakes are a burst the server handles, but they
  // would make connect time part of nothing we measure.
  const out: Discovery[] = [];
  for (let i = 0; i < n; i += 20) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, j) => inst.connect(`${prefix}-${i + j}`)))));
  }
  return out;
}

async function closeAll(clients: readonly Discovery[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

async function measureSets(d: Discovery): Promise<{ serial: LoadResult; pipelined: LoadResult }> {
  const put = (i: number) => d.put(`bench/set/${i % KEYS}`, VALUE);
  const serial = await drive(put, 1);
  const pipelined = await drive(put, PIPELINE);
  return { serial, pipelined };
}

async function measureCache(d: Discovery): Promise<{ watchGet: number; clientCached: number }> {
  const keys = Array.from({ length: KEYS }, (_, i) => `bench/cache/${String(i).padStart(4, '0')}`);
  await Promise.all(keys.map((k) => d.put(k, VALUE)));
  const watch = await d.watch('bench/cache/');
  if (watch.list().length !== KEYS || d.cached(keys[7] as string) === undefined) throw new Error('cache is not populated');
  let i = 0;
  const watchGet = measure('watch.get', () => watch.get(keys[i++ % KEYS] as string), CACHE_MS);
  const clientCached = measure('client.cached', () => d.cached(keys[i++ % KEYS] as string), CACHE_MS);
  watch.stop();
  return { watchGet, clientCached };
}

async function measurePropagation(inst: BackendInstance, writer: Discovery): Promise<Pick<Results, 'putAck' | 'propEach' | 'propAll'>> {
  const WARM = 30;
  const total = WARM + CHANGES;
  const starts = new Float64Array(total);
  const seen = new Uint16Array(total);
  const each: number[] = [];
  const all: number[] = [];
  const acks: number[] = [];
  let wake: (() => void) | undefined;
  const onEvent = (ev: KvEvent): void => {
    const now = performance.now();
    if (ev.type !== 'put') return;
    const idx = Number(Buffer.from(ev.kv.value).toString());
    if (idx >= WARM) each.push(now - (starts[idx] as number));
    seen[idx] = (seen[idx] as number) + 1;
    if (seen[idx] === WATCHERS) {
      if (idx >= WARM) all.push(now - (starts[idx] as number));
      wake?.();
    }
  };
  const watchers = await connectMany(inst, 'bench-watcher', WATCHERS);
  try {
    await Promise.all(watchers.map((w) => w.watch('bench/prop/', { onEvent })));
    for (let i = 0; i < total; i++) {
      const allSeen = new Promise<void>((resolve) => (wake = resolve));
      const t0 = performance.now();
      starts[i] = t0;
      await writer.put('bench/prop/key', String(i));
      if (i >= WARM) acks.push(performance.now() - t0);
      await allSeen;
    }
  } finally {
    await closeAll(watchers);
  }
  const e = sortedCopy(each);
  const a = sortedCopy(all);
  const k = sortedCopy(acks);
  if (e.length !== CHANGES * WATCHERS) throw new Error(`expected ${CHANGES * WATCHERS} events, saw ${e.length}`);
  return {
    putAck: { p50: percentile(k, 50), p99: percentile(k, 99) },
    propEach: { p50: percentile(e, 50), p99: percentile(e, 99), n: e.length },
    propAll: { p50: percentile(a, 50), p99: percentile(a, 99), n: a.length },
  };
}

async function measureRegistrations(inst: BackendInstance): Promise<Pick<Results, 'regAll' | 'deregAll' | 'regAcked'>> {
  const registrars = await connectMany(inst, 'bench-registrar', REG_CONNS);
  const watchers = await connectMany(inst, 'bench-svcwatcher', REG_WATCHERS);
  const regAll: number[] = [];
  const deregAll: number[] = [];
  const regAcked: number[] = [];
  try {
    const counts = new Int32Array(REG_WATCHERS);
    let target = 0;
    let wake: (() => void) | undefined;
    const check = (): void => {
      if (counts.every((c) => c === target)) wake?.();
    };
    const watches = await Promise.all(
      watchers.map((w, wi) =>
        w.watchServices('benchsvc', {
          onEvent: (ev: ServiceEvent) => {
            if (ev.type === 'add') counts[wi] = (counts[wi] as number) + 1;
            else if (ev.type === 'remove') counts[wi] = (counts[wi] as number) - 1;
            check();
          },
        }),
      ),
    );
    for (let round = 0; round < REG_ROUNDS; round++) {
      const descs: ServiceDesc[] = Array.from({ length: REGISTRATIONS }, (_, i) => ({
        name: 'benchsvc',
        id: `benchsvc-${round}-${i}`,
        host: '127.0.0.1',
        port: 20000 + i,
        meta: { addr: `1.0.${i}`, group: 'dev', index: String(i) },
      }));
      const byConn = (i: number): Discovery => registrars[i % REG_CONNS] as Discovery;

      target = REGISTRATIONS;
      let done = new Promise<void>((resolve) => (wake = resolve));
      let t0 = performance.now();
      const acked = Promise.all(descs.map((d, i) => byConn(i).register(d))).then(() => regAcked.push(performance.now() - t0));
      await done;
      regAll.push(performance.now() - t0);
      await acked;
      if (watches.some((w) => w.list().length !== REGISTRATIONS)) throw new Error('a watcher missed registrations');

      target = 0;
      done = new Promise<void>((resolve) => (wake = resolve));
      t0 = performance.now();
      await Promise.all(descs.map((d, i) => byConn(i).deregister(d.name, d.id)));
      await done;
      deregAll.push(performance.now() - t0);
    }
    for (const w of watches) w.stop();
  } finally {
    await closeAll([...registrars, ...watchers]);
  }
  return { regAll, deregAll, regAcked };
}

async function measureBackend(inst: BackendInstance): Promise<Results> {
  const main = await inst.connect('bench-main');
  try {
    await main.deletePrefix('bench/');
    const sets = await measureSets(main);
    const cache = await measureCache(main);
    const prop = await measurePropagation(inst, main);
    const regs = await measureRegistrations(inst);
    await main.deletePrefix('bench/');
    return { setSerial: sets.serial, setPipelined: sets.pipelined, ...cache, ...prop, ...regs };
  } finally {
    await main.close();
  }
}

async function measureRawEcho(): Promise<{ serial: LoadResult; pipelined: LoadResult }> {
  const { port, child } = await startFrameEcho('discovery-raw-echo');
  const client = await RawEchoClient.connect(port);
  try {
    const req = (): Promise<Buffer> => client.request(1000, VALUE);
    const serial = await drive(req, 1);
    const pipelined = await drive(req, PIPELINE);
    return { serial, pipelined };
  } finally {
    client.close();
    await child.stop();
  }
}

/** The disk's floor for one durable write: append 100 bytes to a file in tmpdir() and fdatasync, serially. */
async function measureFsync(n = 200): Promise<{ p50: number; p99: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gm-bench-fsync-'));
  const fh = await open(path.join(dir, 'journal'), 'a');
  const record = Buffer.alloc(100, 0x62);
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await fh.write(record);
      await fh.datasync();
      times.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
    await rm(dir, { recursive: true, force: true });
  }
  const sorted = sortedCopy(times);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

const ms = (v: number): string => fmtNum(v, 2);
const median = (v: readonly number[]): number => percentile(sortedCopy(v), 50);
const best = (v: readonly number[]): number => Math.min(...v);
const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED');
const rate = (r: LoadResult): string => fmtInt(r.ops);
const lat = (r: LoadResult): string => `${ms(r.p50)} / ${ms(r.p99)}`;

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const raw = await measureRawEcho();
  const fsync = await measureFsync();
  const results: Array<{ name: string; where: string; r: Results }> = [];
  for (const backend of BACKENDS) {
    const inst = await backend.start();
    try {
      results.push({ name: backend.name, where: inst.where, r: await measureBackend(inst) });
    } finally {
      await inst.stop();
    }
  }

  const col = (f: (r: Results) => string): string[] => results.map(({ r }) => f(r));
  const rows: string[][] = [
    ['round trips/s, serial (1 in flight): durable put', '', rate(raw.serial), ...col((r) => rate(r.setSerial))],
    ['  latency p50 / p99 (ms)', '', lat(raw.serial), ...col((r) => lat(r.setSerial))],
    ['  disk floor: 100-byte append + fdatasync, p50 / p99 (ms)', '', `${ms(fsync.p50)} / ${ms(fsync.p99)}`, ...col(() => '')],
    [`round trips/s, pipelined (${fmtInt(PIPELINE)} in flight): durable put`, '≥ 50,000', rate(raw.pipelined), ...col((r) => rate(r.setPipelined))],
    ['  latency p50 / p99 (ms)', '', lat(raw.pipelined), ...col((r) => lat(r.setPipelined))],
    ['cached reads/s: watch.get(key)', '', '—', ...col((r) => fmtInt(r.watchGet))],
    ['cached reads/s: client.cached(key)', '', '—', ...col((r) => fmtInt(r.clientCached))],
    [`change → ${WATCHERS} watchers: each watcher, p50 / p99 (ms)`, 'p99 < 5', '—', ...col((r) => `${ms(r.propEach.p50)} / ${ms(r.propEach.p99)}`)],
    [`change → ${WATCHERS} watchers: last of ${WATCHERS}, p50 / p99 (ms)`, 'p99 < 5', '—', ...col((r) => `${ms(r.propAll.p50)} / ${ms(r.propAll.p99)}`)],
    ['  writer put ack during it, p50 / p99 (ms)', '', '—', ...col((r) => `${ms(r.putAck.p50)} / ${ms(r.putAck.p99)}`)],
    [`${fmtInt(REGISTRATIONS)} registrations → all ${REG_WATCHERS} watchers, median / best (ms)`, '', '—', ...col((r) => `${fmtNum(median(r.regAll), 1)} / ${fmtNum(best(r.regAll), 1)}`)],
    [`  all ${fmtInt(REGISTRATIONS)} register() calls acked, median (ms)`, '', '—', ...col((r) => fmtNum(median(r.regAcked), 1))],
    [`${fmtInt(REGISTRATIONS)} deregistrations → all ${REG_WATCHERS} watchers, median / best (ms)`, '', '—', ...col((r) => `${fmtNum(median(r.deregAll), 1)} / ${fmtNum(best(r.deregAll), 1)}`)],
  ];
  printTable('discovery: server in its own process, clients in the bench process', ['case', 'target', 'raw framed echo (ceiling)', ...results.map((r) => r.name)], rows);
  const builtin = results.find((r) => r.name === 'built-in')?.r;
  const etcdR = results.find((r) => r.name === 'etcd')?.r;
  if (builtin && etcdR) {
    const x = (a: number, b: number): string => `${fmtNum(a / b, 2)}x`;
    printTable(`built-in vs etcd, same run (above 1: built-in ahead) — loadavg ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`, ['figure', 'built-in', 'etcd', 'built-in ahead by'], [
      ['durable puts/s, serial', rate(builtin.setSerial), rate(etcdR.setSerial), x(builtin.setSerial.ops, etcdR.setSerial.ops)],
      [`durable puts/s, ${fmtInt(PIPELINE)} pipelined`, rate(builtin.setPipelined), rate(etcdR.setPipelined), x(builtin.setPipelined.ops, etcdR.setPipelined.ops)],
      ['cached reads/s, watch.get', fmtInt(builtin.watchGet), fmtInt(etcdR.watchGet), x(builtin.watchGet, etcdR.watchGet)],
      ['cached reads/s, client.cached', fmtInt(builtin.clientCached), fmtInt(etcdR.clientCached), x(builtin.clientCached, etcdR.clientCached)],
      [`change → ${WATCHERS} watchers, each, p99 ms`, ms(builtin.propEach.p99), ms(etcdR.propEach.p99), x(etcdR.propEach.p99, builtin.propEach.p99)],
      [`change → ${WATCHERS} watchers, last, p99 ms`, ms(builtin.propAll.p99), ms(etcdR.propAll.p99), x(etcdR.propAll.p99, builtin.propAll.p99)],
    ]);
  }
  const first = results[0]?.r;
  console.log(
    [
      ...results.map(({ name, where }) => `- ${name}: ${where}.`),
      `- raw framed echo: node:net + src/wire/frame.ts, ${VALUE.length}-byte body, echo server in its own process (bench/fixtures/frame-echo.ts).`,
      `- puts: ${VALUE.length}-byte values over ${fmtInt(KEYS)} keys, one connection; ${driveNote()}.`,
      `- propagation: ${CHANGES} serial puts (after 30 warm-up ones); ${WATCHERS} watcher connections + the writer, all in the bench process (one event loop),` +
        ` so later watchers' times include this process handling the earlier watchers' frames; "each watcher" pools ${fmtInt(first?.propEach.n ?? 0)} samples.`,
      `- registrations: ${REG_ROUNDS} rounds; ${REG_CONNS} registrar + ${REG_WATCHERS} watcher connections in the bench process; each registration is its own durable write.`,
      `- ${loadNote(cpu)}.`,
      ...results.flatMap(({ name, r }) => [
        `- target (${name}): ≥ 50,000 durable pipelined puts/s: ${fmtInt(r.setPipelined.ops)}, ${mark(r.setPipelined.ops >= 50_000)}.`,
        `- target (${name}): change → ${WATCHERS} watchers p99 < 5 ms: each watcher ${ms(r.propEach.p99)} ms, ${mark(r.propEach.p99 < 5)}; last of ${WATCHERS} ${ms(r.propAll.p99)} ms, ${mark(r.propAll.p99 < 5)}.`,
      ]),
      '',
    ].join('\n'),
  );
}

if (isMain(import.meta.url)) {
  await run();
}
