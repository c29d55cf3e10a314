/**
 * The gateway's pomelo port against its native port: one `gamemesh agent`
 * with both (`--tcp-port 0 --pomelo-tcp-port 0`), the gateway bench's echo
 * backend (bench/fixtures/gateway-backend.ts) and discovery, and two load
 * generator processes (bench/fixtures/gateway-load.ts), one speaking the
 * native client protocol, one pomelo (pomelo-protocol's codecs, the same
 * echo.EchoReq as JSON on route "echo.EchoReq"). Same work, same run: the
 * two take turns, round by round, at each client count; each client has one
 * request in flight (closed loop). The agent converts every pomelo request
 * from JSON to protobuf and every answer back; the backend cannot tell.
 *
 * Target: the pomelo port reaches at least 70 % of the native port's msgs/s
 * (median of the rounds' paired ratios).
 *
 * `BENCH_POMELO_CLIENTS=100,1000` and `BENCH_POMELO_ROUNDS=4` change the
 * client counts and rounds.
 */
import { join } from 'node:path';
import { assignIds } from '../src/codegen/ids.js';
import { loadProtos } from '../src/codegen/load.js';
import { pomeloSchema } from '../src/codegen/pomelo.js';
import { DiscoveryClient } from '../src/discovery/client.js';
import { ROUTES_KEY } from '../src/gateway/routes.js';
import { bin, envInts, LoadGen, measureRound, pairedRatio, startDiscovery, summarize, type E2eResult, type Round, type Running } from './gateway.js';
import { CpuLoad, FIXTURES, loadNote, profArgs, ROOT, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';

const CLIENT_COUNTS: readonly number[] = envInts('BENCH_POMELO_CLIENTS') ?? [100, 1000];
const ROUNDS = envInts('BENCH_POMELO_ROUNDS')?.[0] ?? 4;
const TARGET = 0.7;
const NATIVE = 'native TCP';
const POMELO = 'pomelo TCP';

/** The bench's route table with the pomelo section `gamemesh gen` would write for examples/echo. */
function routes(): object {
  const loaded = loadProtos(join(ROOT, 'examples', 'echo'));
  const ids = assignIds(loaded, new Set(['echo.EchoReq', 'echo.EchoResp']));
  return { version: 1, routes: [{ msgId: 1001, name: 'echo.EchoReq', service: 'echo', rule: 'pass' }], pomelo: pomeloSchema(loaded, ids, new Map()) };
}

const AGENT_READY = /^agent (\S+) listening tcp=\S+:(\d+) ws=\S+ pomelo-ws=\S+ pomelo-tcp=\S+:(\d+)$/;

async function waitForEcho(gen: LoadGen, port: number, transport: 'tcp' | 'pomelo'): Promise<void> {
  await gen.cmd({ cmd: 'connect', port, total: 1, transport });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await gen.cmd({ cmd: 'run', clients: 1, warmMs: 0, ms: 50 });
    if (Number(r['responses']) > 0 && Number(r['errors']) === 0) return;
    if (Date.now() > deadline) throw new Error(`the agent did not answer ${transport} echo requests within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const children: Child[] = [];
  const sd = await startDiscovery();
  children.push(sd.child);
  try {
    const client = await DiscoveryClient.connect({ addr: sd.addr, name: 'pomelo-bench' });
    try {
      await client.put(`config/${ROUTES_KEY}`, JSON.stringify(routes()));
    } finally {
      await client.close();
    }
    const args = [bin(), 'agent', '--sdaddr', sd.addr, '--tcp-port', '0', '--ws-port', '-1', '--pomelo-tcp-port', '0'];
    args.push('--max-msgs-per-sec', '1000000000', '--heartbeat-sec', '60', '--loglevel', 'warn');
    const agent = await startNode(args, AGENT_READY, { execArgv: profArgs('pomelo-agent') });
    children.push(agent);
    const backend = await startNode([`${FIXTURES}gateway-backend.js`, '--sdaddr', sd.addr], /^ready (\S+)$/, { execArgv: profArgs('pomelo-backend') });
    children.push(backend);
    const nativeGen = await LoadGen.start('pomelo-bench-native');
    children.push(nativeGen.child);
    const pomeloGen = await LoadGen.start('pomelo-bench-pomelo');
    children.push(pomeloGen.child);
    const ports = { tcp: Number(agent.ready[2]), pomelo: Number(agent.ready[3]) };
    await waitForEcho(nativeGen, ports.tcp, 'tcp');
    await waitForEcho(pomeloGen, ports.pomelo, 'pomelo');
    const stop = async (): Promise<void> => undefined;
    const systems: Array<Running & { transport: 'tcp' | 'pomelo' }> = [
      { name: NATIVE, where: 'native client protocol, protobuf bodies forwarded untouched', port: ports.tcp, front: agent.proc, back: backend.proc, gen: nativeGen, stop, transport: 'tcp' },
      { name: POMELO, where: 'pomelo protocol, JSON bodies converted to protobuf and back by the agent', port: ports.pomelo, front: agent.proc, back: backend.proc, gen: pomeloGen, stop, transport: 'pomelo' },
    ];
    const results: E2eResult[] = [];
    for (const clients of CLIENT_COUNTS) {
      for (const sys of systems) await sys.gen.cmd({ cmd: 'connect', port: sys.port, total: clients, transport: sys.transport }, 120_000);
      const rounds: Round[][] = systems.map(() => []);
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < systems.length; k++) {
          const i = (k + r) % systems.length;
          (rounds[i] as Round[]).push(await measureRound(systems[i] as Running, clients));
        }
      }
      systems.forEach((sys, i) => results.push(summarize(sys.name, clients, rounds[i] as Round[])));
    }
    print(results);
  } finally {
    for (const c of children.reverse()) await c.stop();
  }
  console.log(`- ${loadNote(cpu)}.\n`);
}

function print(results: readonly E2eResult[]): void {
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const n of CLIENT_COUNTS) {
    const native = results.find((r) => r.clients === n && r.system === NATIVE);
    const pomelo = results.find((r) => r.clients === n && r.system === POMELO);
    if (!native || !pomelo) continue;
    const ratio = pairedRatio(pomelo, native);
    for (const r of [native, pomelo]) {
      rows.push([
        fmtInt(n),
        r.system,
        fmtInt(r.perSec),
        `${fmtInt(r.minPerSec)}-${fmtInt(r.maxPerSec)}`,
        fmtNum(r.p50, 2),
        fmtNum(r.p99, 2),
        r === pomelo ? `${Math.round(ratio * 100)} %` : '(baseline)',
        fmtNum(r.genUs, 1),
        fmtNum(r.frontUs, 1),
        fmtNum(r.backUs, 1),
        r === pomelo ? `≥ ${Math.round(TARGET * 100)} %: ${ratio >= TARGET ? 'met' : 'MISSED'}` : '',
      ]);
    }
    verdicts.push(`- ${fmtInt(n)} clients: pomelo ${Math.round(ratio * 100)} % of native (median of the rounds' ratios), ${ratio >= TARGET ? 'met' : 'MISSED'}; agent CPU per message ${fmtNum(pomelo.frontUs, 1)} vs ${fmtNum(native.frontUs, 1)} µs.`);
  }
  printTable(
    'gateway, pomelo port vs native port: N clients, 1 request in flight each, echoed by a backend',
    ['clients', 'port', 'msgs/s', 'range', 'p50 ms', 'p99 ms', 'vs native', 'CPU µs/msg: load gen', 'agent', 'backend', 'target'],
    rows,
  );
  console.log(verdicts.join('\n'));
  console.log(`- each case: ${ROUNDS} rounds per port, taking turns (order rotated each round), on one agent process; the two load generators are separate processes. msgs/s = responses in the window (median round; range = slowest-fastest); p50/p99 at the load generator.`);
}

if (isMain(import.meta.url)) {
  await run();
}
