/**
 * Streams between two processes, each figure beside a raw TCP socket
 * between the same two processes in the same run.
 *
 *   bench process   a ServiceNode "bench-streams" (dependencies: sink) that
 *                   opens the streams, and the raw TCP client;
 *   peer process    bench/fixtures/stream-peer.ts: ServiceNode "sink"
 *                   (onStream by meta mode: discard / source / idle, and an
 *                   echo RPC), and a raw TCP server with the same modes;
 *   discovery       `gamemesh discovery` in a third process, idle meanwhile.
 *
 * (a) One stream: MB/s uploading (bench -> peer, counted by the peer) and
 *     downloading (peer -> bench), through one stream and through one raw
 *     socket. Target: the stream at >= 60 % of raw.
 * (b) 100 streams at once uploading: total MB/s, and fairness (the bytes of
 *     the slowest stream over the fastest's), beside 100 raw sockets.
 * (c) Head-of-line: serial RPC calls (1 in flight) on the link, p50/p99:
 *     idle; while one raw socket between the two processes saturates
 *     (the cost of sharing 2 cores); while one stream on the same link
 *     saturates it, either way. Target: p99 at most 2 ms above idle.
 * (d) Memory: RSS per idle open stream, at the acceptor (the peer) and the
 *     opener (this process), after gc(); beside RSS per idle raw socket at
 *     the peer.
 *
 * `BENCH_STREAM_PARTS=one,many,hol,memory` picks parts; `BENCH_STREAM_WINDOW=<bytes>`
 * sets both nodes' stream window (default: the node default).
 */
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { pino } from 'pino';
import { ServiceNode } from '../src/service/node.js';
import type { MeshStream } from '../src/service/stream/index.js';
import { Req, Resp } from './echo-messages.js';
import { CpuLoad, FIXTURES, LOAD_MS, loadNote, percentile, profArgs, ROOT, sortedCopy, startNode, withCpu, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';

const BLOCK = Buffer.alloc(64 * 1024, 3);
const MANY = 100;
const MEM_STREAMS = 10_000;
const MEM_SOCKETS = 5_000;
const WARM_MS = Math.max(200, Math.round(LOAD_MS / 5));
const MB = 1e6;

const WINDOW = process.env['BENCH_STREAM_WINDOW'] ? Number(process.env['BENCH_STREAM_WINDOW']) : undefined;
const PARTS = new Set((process.env['BENCH_STREAM_PARTS'] ?? 'one,many,hol,memory').split(',').map((s) => s.trim()));

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  streams: number;
  sockets: number;
  gc: boolean;
}

/** The peer process: its stdout lines after `ready`, and `mem` on request. */
class Peer {
  private buf = '';
  private waiters: Array<(m: Mem) => void> = [];
  constructor(readonly child: Child) {
    child.proc.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (line.startsWith('mem ')) this.waiters.shift()?.(JSON.parse(line.slice(4)) as Mem);
      }
    });
  }
  get rawPort(): number {
    return Number(this.child.ready[2]);
  }
  mem(): Promise<Mem> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.child.proc.stdin?.write('mem\n');
    });
  }
}

// ---- writers and readers ------------------------------------------------------

/** Writes BLOCKs while `until()` holds, honouring backpressure, then ends. Resolves with the bytes written. */
function writeWhile(out: NodeJS.WritableStream & { destroyed: boolean }, until: () => boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    let written = 0;
    out.once('error', reject);
    const more = (): void => {
      while (until() && !out.destroyed) {
        written += BLOCK.length;
        if (!out.write(BLOCK)) {
          out.once('drain', more);
          return;
        }
      }
      out.end();
      resolve(written);
    };
    more();
  });
}

/** Everything a readable side delivers, as text (a discard peer's byte count). */
async function readText(input: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of input) text += (chunk as Buffer).toString();
  return text;
}

/** Counts what arrives until the end; resolves with the byte count. */
async function countBytes(input: NodeJS.ReadableStream): Promise<number> {
  let n = 0;
  for await (const chunk of input) n += (chunk as Buffer).length;
  return n;
}

function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function openStream(node: ServiceNode, meta: Record<string, string>): Promise<MeshStream> {
  const stream = node.openStream('sink', { meta });
  await once(stream, 'open');
  return stream;
}

/** A transfer's rate, and CPU ms per MB in this process and in the peer process. */
interface Rate {
  mbs: number;
  selfMsPerMB: number;
  peerMsPerMB: number;
}

let peerPid: number | undefined;

async function timed(run: () => Promise<number>): Promise<Rate> {
  const t0 = performance.now();
  const { result: bytes, selfMs, peerMs } = await withCpu(peerPid, run);
  const mb = bytes / MB;
  return { mbs: mb / ((performance.now() - t0) / 1000), selfMsPerMB: selfMs / mb, peerMsPerMB: peerMs / mb };
}

/** One upload of `ms` through a fresh transport: from the first write to the peer's count. */
function upload(open: () => Promise<NodeJS.ReadWriteStream & { destroyed: boolean }>, ms: number): Promise<Rate> {
  return timed(async () => {
    const t = await open();
    const deadline = performance.now() + ms;
    const answer = readText(t);
    await writeWhile(t, () => performance.now() < deadline);
    return Number(await answer);
  });
}

function download(open: (bytes: number) => Promise<NodeJS.ReadableStream>, bytes: number): Promise<Rate> {
  return timed(async () => {
    const got = await countBytes(await open(bytes));
    if (got !== bytes) throw new Error(`download: got ${got} of ${bytes} bytes`);
    return got;
  });
}

const better = (a: Rate | undefined, b: Rate): Rate => (a && a.mbs >= b.mbs ? a : b);
const cpuCell = (r: Rate): string => `${fmtNum(r.selfMsPerMB, 2)} + ${fmtNum(r.peerMsPerMB, 2)}`;

// ---- the parts --------------------------------------------------------------------

interface Ctx {
  node: ServiceNode;
  peer: Peer;
  rows: string[][];
  notes: string[];
}

const ratioCell = (a: number, b: number): string => `${fmtNum((a / b) * 100, 0)} %`;

async function partOne({ node, peer, rows }: Ctx): Promise<void> {
  const viaStream = (mode: string) => () => openStream(node, { mode });
  const viaRaw = async () => {
    const s = await rawConnect(peer.rawPort);
    s.write('d');
    return s;
  };
  // Warm both, then measure each direction twice, alternating, and keep the better.
  await upload(viaStream('discard'), WARM_MS);
  await upload(viaRaw, WARM_MS);
  let upRaw: Rate | undefined;
  let upStream: Rate | undefined;
  for (let i = 0; i < 2; i++) {
    upRaw = better(upRaw, await upload(viaRaw, LOAD_MS));
    upStream = better(upStream, await upload(viaStream('discard'), LOAD_MS));
  }
  const up = { raw: upRaw as Rate, stream: upStream as Rate };
  const bytes = Math.max(64 * BLOCK.length, Math.round((up.raw.mbs * MB * LOAD_MS) / 1000 / BLOCK.length) * BLOCK.length);
  const downStream = (n: number) => openStream(node, { mode: 'source', bytes: String(n) });
  const downRaw = async (n: number) => {
    const s = await rawConnect(peer.rawPort);
    s.end(`s${n}\n`);
    return s;
  };
  let downRawBest: Rate | undefined;
  let downStreamBest: Rate | undefined;
  for (let i = 0; i < 2; i++) {
    downRawBest = better(downRawBest, await download(downRaw, bytes));
    downStreamBest = better(downStreamBest, await download(downStream, bytes));
  }
  const down = { raw: downRawBest as Rate, stream: downStreamBest as Rate };
  const target = (s: Rate, r: Rate) => `≥ 60 %: ${s.mbs / r.mbs >= 0.6 ? 'met' : 'MISSED'}`;
  rows.push(['one stream, bench → peer (MB/s)', fmtNum(up.stream.mbs, 0), fmtNum(up.raw.mbs, 0), ratioCell(up.stream.mbs, up.raw.mbs), target(up.stream, up.raw)]);
  rows.push(['  CPU ms per MB, bench + peer', cpuCell(up.stream), cpuCell(up.raw), '', '']);
  rows.push(['one stream, peer → bench (MB/s)', fmtNum(down.stream.mbs, 0), fmtNum(down.raw.mbs, 0), ratioCell(down.stream.mbs, down.raw.mbs), target(down.stream, down.raw)]);
  rows.push(['  CPU ms per MB, bench + peer', cpuCell(down.stream), cpuCell(down.raw), '', '']);
}

/** Opens `n` transports, uploads through all at once for `ms`; total MB/s and per-transport counts. */
async function uploadMany(open: () => Promise<NodeJS.ReadWriteStream & { destroyed: boolean }>, n: number, ms: number): Promise<{ total: number; min: number; max: number }> {
  const ts = await Promise.all(Array.from({ length: n }, open));
  const t0 = performance.now();
  const deadline = t0 + ms;
  const answers = ts.map((t) => readText(t));
  await Promise.all(ts.map((t) => writeWhile(t, () => performance.now() < deadline)));
  const counts = (await Promise.all(answers)).map(Number);
  const secs = (performance.now() - t0) / 1000;
  const sum = counts.reduce((a, b) => a + b, 0);
  return { total: sum / MB / secs, min: Math.min(...counts), max: Math.max(...counts) };
}

async function partMany({ node, peer, rows }: Ctx): Promise<void> {
  const viaStream = () => openStream(node, { mode: 'discard' });
  const viaRaw = async () => {
    const s = await rawConnect(peer.rawPort);
    s.write('d');
    return s;
  };
  await uploadMany(viaStream, MANY, WARM_MS);
  const raw = await uploadMany(viaRaw, MANY, LOAD_MS);
  const streams = await uploadMany(viaStream, MANY, LOAD_MS);
  rows.push([`${MANY} streams at once, bench → peer, total (MB/s)`, fmtNum(streams.total, 0), fmtNum(raw.total, 0), ratioCell(streams.total, raw.total), '']);
  rows.push([`${MANY} streams, slowest ÷ fastest stream (bytes)`, ratioCell(streams.min, streams.max), ratioCell(raw.min, raw.max), '', '']);
}

/** Serial RPC for `ms`: p50 and p99 in ms. */
async function rpcLatency(node: ServiceNode, ms: number): Promise<{ p50: number; p99: number; calls: number }> {
  const lat: number[] = [];
  const deadline = performance.now() + ms;
  let i = 0;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    const res = await node.call('sink', Req, Resp, { text: 'hol', n: i++ }, { timeoutMs: 10_000 });
    lat.push(performance.now() - t0);
    if (res.n !== i - 1) throw new Error('wrong echo');
  }
  const sorted = sortedCopy(lat);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), calls: lat.length };
}

/** Runs `bulk` (started, then stopped by the returned function) around an RPC measurement. */
async function underLoad(node: ServiceNode, bulk: () => Promise<() => Promise<number>>): Promise<{ p50: number; p99: number; calls: number; mbs: number }> {
  const t0 = performance.now();
  const stop = await bulk();
  await new Promise((r) => setTimeout(r, WARM_MS));
  const res = await rpcLatency(node, LOAD_MS);
  const bytes = await stop();
  return { ...res, mbs: bytes / MB / ((performance.now() - t0) / 1000) };
}

async function partHol({ node, peer, rows, notes }: Ctx): Promise<void> {
  await rpcLatency(node, WARM_MS);
  const idle = await rpcLatency(node, LOAD_MS);
  const uploadBulk = (open: () => Promise<NodeJS.ReadWriteStream & { destroyed: boolean }>) => async () => {
    const t = await open();
    let running = true;
    const answer = readText(t);
    const wrote = writeWhile(t, () => running);
    return async () => {
      running = false;
      await wrote;
      return Number(await answer);
    };
  };
  const downloadBulk = (open: () => Promise<NodeJS.ReadableStream & { destroy(): void }>) => async () => {
    const t = await open();
    let n = 0;
    t.on('data', (c: Buffer) => (n += c.length));
    t.on('error', () => {});
    return async () => {
      t.destroy();
      return n;
    };
  };
  const raw = async () => {
    const s = await rawConnect(peer.rawPort);
    s.write('d');
    return s;
  };
  const rawUp = await underLoad(node, uploadBulk(raw));
  const streamUp = await underLoad(node, uploadBulk(() => openStream(node, { mode: 'discard' })));
  const streamDown = await underLoad(node, downloadBulk(() => openStream(node, { mode: 'source', bytes: String(1e12) })));
  const cell = (r: { p50: number; p99: number }) => `${fmtNum(r.p50, 2)} / ${fmtNum(r.p99, 2)}`;
  const verdict = (r: { p99: number }) => `p99 ≤ idle + 2 ms: ${r.p99 <= idle.p99 + 2 ? 'met' : 'MISSED'}`;
  rows.push(['RPC p50 / p99 (ms), idle link', cell(idle), '', '', '']);
  rows.push([`RPC p50 / p99 (ms), a raw socket saturated beside it (${fmtNum(rawUp.mbs, 0)} MB/s)`, '', cell(rawUp), '', '']);
  rows.push([`RPC p50 / p99 (ms), a stream on the link saturating it bench → peer (${fmtNum(streamUp.mbs, 0)} MB/s)`, cell(streamUp), '', '', verdict(streamUp)]);
  rows.push([`RPC p50 / p99 (ms), a stream on the link saturating it peer → bench (${fmtNum(streamDown.mbs, 0)} MB/s)`, cell(streamDown), '', '', verdict(streamDown)]);
  notes.push(`- head-of-line: serial echo RPCs (1 in flight) for ${(LOAD_MS / 1000).toFixed(1)} s each: idle ${fmtInt(idle.calls)} calls, with the raw socket ${fmtInt(rawUp.calls)}, with the stream ${fmtInt(streamUp.calls)} / ${fmtInt(streamDown.calls)}.`);
}

const selfGc = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function selfRss(): number {
  selfGc();
  selfGc();
  return process.memoryUsage().rss;
}

async function partMemory({ node, peer, rows, notes }: Ctx, startRawPeer: () => Promise<Peer>): Promise<void> {
  const peer0 = await peer.mem();
  const self0 = selfRss();
  const streams: MeshStream[] = [];
  for (let i = 0; i < MEM_STREAMS; i += 500) {
    const batch = await Promise.all(Array.from({ length: Math.min(500, MEM_STREAMS - i) }, () => openStream(node, { mode: 'idle' })));
    streams.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 500));
  const peer1 = await peer.mem();
  const self1 = selfRss();
  if (peer1.streams !== MEM_STREAMS) throw new Error(`the peer holds ${peer1.streams} streams, expected ${MEM_STREAMS}`);
  for (const s of streams) s.destroy();
  streams.length = 0;
  // The raw baseline in a fresh process, so neither figure reuses memory the other freed.
  const rawPeer = await startRawPeer();
  const rawBefore = await rawPeer.mem();
  const sockets: net.Socket[] = [];
  for (let i = 0; i < MEM_SOCKETS; i += 500) {
    const batch = await Promise.all(Array.from({ length: Math.min(500, MEM_SOCKETS - i) }, () => rawConnect(rawPeer.rawPort)));
    for (const s of batch) s.write('i');
    sockets.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 500));
  const rawAfter = await rawPeer.mem();
  if (rawAfter.sockets !== MEM_SOCKETS) throw new Error(`the raw peer holds ${rawAfter.sockets} sockets, expected ${MEM_SOCKETS}`);
  for (const s of sockets) s.destroy();
  const kb = (a: number, b: number, n: number) => fmtNum((b - a) / n / 1024, 2);
  rows.push([`RSS per idle open stream, acceptor (KB, ${fmtInt(MEM_STREAMS)} streams)`, kb(peer0.rss, peer1.rss, MEM_STREAMS), kb(rawBefore.rss, rawAfter.rss, MEM_SOCKETS), '', '']);
  rows.push([`RSS per idle open stream, opener (KB)`, kb(self0, self1, MEM_STREAMS), '', '', '']);
  rows.push([`heapUsed per idle open stream, acceptor (KB)`, kb(peer0.heapUsed, peer1.heapUsed, MEM_STREAMS), kb(rawBefore.heapUsed, rawAfter.heapUsed, MEM_SOCKETS), '', '']);
  notes.push(
    `- memory: process.memoryUsage() after two gc() calls, before and 0.5 s after opening ${fmtInt(MEM_STREAMS)} idle streams (500 at a time, each accepted), per stream; the raw column is per idle socket (${fmtInt(MEM_SOCKETS)} sockets) in a fresh process of the same fixture (its raw server alone), kernel buffers not included.${peer1.gc ? '' : ' (--expose-gc was not in effect at the peer.)'}`,
  );
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const children: Child[] = [];
  let node: ServiceNode | undefined;
  try {
    const sd = await startNode([path.join(ROOT, 'bin', 'gamemesh.js'), 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/);
    children.push(sd);
    const sdaddr = `${sd.ready[1]}:${sd.ready[2]}`;
    const child = await startNode([`${FIXTURES}stream-peer.js`, '--sdaddr', sdaddr, ...(WINDOW ? ['--window', String(WINDOW)] : [])], /^ready (\S+) (\d+)$/, { execArgv: ['--expose-gc', ...profArgs('stream-peer')] });
    children.push(child);
    const peer = new Peer(child);
    peerPid = child.proc.pid;
    node = new ServiceNode({ name: 'bench-streams', config: { sdaddr, listen: '127.0.0.1:0' }, dependencies: ['sink'], logger: pino({ level: 'silent' }), streams: { maxStreamsPerLink: 50_000, ...(WINDOW ? { window: WINDOW } : {}) } });
    await node.start();
    await node.whenReady();
    const ctx: Ctx = { node, peer, rows: [], notes: [] };
    const startRawPeer = async (): Promise<Peer> => {
      const c = await startNode([`${FIXTURES}stream-peer.js`, '--raw-only'], /^ready (\S+) (\d+)$/, { execArgv: ['--expose-gc'] });
      children.push(c);
      return new Peer(c);
    };
    // Memory first, while the peer has not yet grown its heap for the transfers.
    if (PARTS.has('memory')) await partMemory(ctx, startRawPeer);
    if (PARTS.has('one')) await partOne(ctx);
    if (PARTS.has('many')) await partMany(ctx);
    if (PARTS.has('hol')) await partHol(ctx);
    printTable('stream: two processes over loopback, beside a raw TCP socket between the same processes', ['case', 'gamemesh stream', 'raw TCP socket', 'stream / raw', 'target'], ctx.rows);
    console.log(
      [
        `- one stream: uploads write 64 KiB blocks for ${(LOAD_MS / 1000).toFixed(1)} s (honouring write() = false) and count at the peer, from the first write to the peer's count arriving; downloads move the same number of bytes as the raw upload did; best of 2 each, alternating with raw, after a warm-up.`,
        `- ${MANY} streams: all on one link (one raw socket each for the baseline), all writing for ${(LOAD_MS / 1000).toFixed(1)} s.`,
        ...ctx.notes,
        `- ${loadNote(cpu)}.`,
        '',
      ].join('\n'),
    );
  } finally {
    await node?.stop();
    for (const c of children.reverse()) await c.stop();
  }
}

if (isMain(import.meta.url)) {
  await run();
}
