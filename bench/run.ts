/**
 * Runs the benches in order: `node dist/bench/run.js [name ...]`.
 * With names, only those benches run (in list order). To add a bench, write
 * bench/<name>.ts exporting `run(): Promise<void>` and add an entry below.
 */
import { isMain } from './lib.js';

interface BenchEntry {
  readonly name: string;
  readonly load: () => Promise<{ run(): Promise<void> }>;
}

export const BENCHES: readonly BenchEntry[] = [
  { name: 'protobuf', load: () => import('./protobuf.js') },
  { name: 'codec', load: () => import('./codec.js') },
  { name: 'msglog', load: () => import('./msglog.js') },
  { name: 'discovery', load: () => import('./discovery.js') },
  { name: 'rpc', load: () => import('./rpc.js') },
  { name: 'backend', load: () => import('./backend.js') },
  { name: 'gateway', load: () => import('./gateway.js') },
  { name: 'kcp', load: () => import('./kcp.js') },
  { name: 'pomelo', load: () => import('./pomelo.js') },
  { name: 'stream', load: () => import('./stream.js') },
  { name: 'metrics', load: () => import('./metrics.js') },
  { name: 'harbor', load: () => import('./harbor.js') },
  { name: 'rooms', load: () => import('./rooms.js') },
  { name: 'hub', load: () => import('./hub.js') },
  { name: 'store', load: () => import('./store.js') },
];

export async function runBenches(names: readonly string[] = []): Promise<void> {
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0) {
    throw new Error(`unknown bench ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}`);
  }
  const selected = names.length === 0 ? BENCHES : BENCHES.filter((b) => names.includes(b.name));
  console.log(`# gamemesh benches — node ${process.version}, ${process.platform}/${process.arch}\n`);
  for (const bench of selected) {
    const started = Date.now();
    const mod = await bench.load();
    await mod.run();
    console.log(`(${bench.name}: ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  }
}

if (isMain(import.meta.url)) {
  try {
    await runBenches(process.argv.slice(2));
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  }
}
