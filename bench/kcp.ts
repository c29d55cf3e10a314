/**
 * KCP against TCP through the agent on a lossy, slow link: request/response
 * round trips (one request in flight per client) at 0 %, 2 % and 10 % packet
 * loss with 30 ms of added delay, p50/p99 latency and the bytes on the wire.
 *
 * The network: two network namespaces made for the run (gmkcp-<pid>-c and
 * -s), joined by a point-to-point link 198.18.0.1 <-> 198.18.0.2 whose two
 * ends are TUN devices held by bench/fixtures/lossy-link.c (compiled here
 * with the machine's C compiler). It forwards each IP packet after 30 ms and
 * drops it with the given probability, in both directions: what `tc netem
 * delay 30ms loss P` on a loopback does to every packet (so the added round
 * trip is 60 ms). This kernel has no netem; the TUN link still loses real IP
 * packets, so TCP recovers with its own retransmission timers, as it would
 * on a lossy network (a user-space TCP proxy would hide that).
 *
 *   server namespace   `gamemesh discovery`, `gamemesh agent --host 198.18.0.2
 *                      --tcp-port 0 --kcp-port 0`, the gateway bench's echo
 *                      backend (bench/fixtures/gateway-backend.ts)
 *   client namespace   bench/fixtures/kcp-load.ts: N SDK GameClients over
 *                      tcpTransport or kcpTransport (turbo or normal mode)
 *
 * Needs root (namespaces, TUN), iproute2 and a C compiler; without them it
 * says why and measures nothing. Everything it creates is removed at the end.
 * BENCH_KCP_SECONDS (default 15) sets each measured window,
 * BENCH_KCP_CLIENTS (default 10) the clients, BENCH_KCP_LOSS (default
 * 0,2,10) the loss percentages.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { CpuLoad, FIXTURES, loadNote, ROOT, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';
import { buildLossyLink, LossyLink } from '../test/helpers/lossy-link.js';

const exec = promisify(execFile);

const SECONDS = Number(process.env['BENCH_KCP_SECONDS'] ?? 15);
const CLIENTS = Number(process.env['BENCH_KCP_CLIENTS'] ?? 10);
const LOSSES = (process.env['BENCH_KCP_LOSS'] ?? '0,2,10').split(',').map(Number);
const DELAY_MS = 30;
const WARM_MS = 3000;
const TRANSPORTS = ['tcp', 'kcp-turbo', 'kcp-normal'] as const;
type TransportName = (typeof TRANSPORTS)[number];
const CLIENT_IP = '198.18.0.1';
const SERVER_IP = '198.18.0.2';
const ROUTES = { version: 1, routes: [{ msgId: 1001, name: 'echo.EchoReq', service: 'echo', rule: 'pass' }] };

/** Why the bench cannot run here, or undefined. */
async function missing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and TUN devices)';
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  try {
    await exec('ip', ['-V']);
  } catch {
    return 'no `ip` (iproute2)';
  }
  return undefined;
}

interface Net {
  client: string;
  server: string;
  link: LossyLink;
  teardown(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await exec('ip', args);
}

async function makeNet(dir: string): Promise<Net> {
  const tag = `${process.pid}`;
  const client = `gmkcp-${tag}-c`;
  const server = `gmkcp-${tag}-s`;
  const devC = `gmk${tag}c`;
  const devS = `gmk${tag}s`;
  const relay = await buildLossyLink(dir);
  const made: string[] = [];
  let link: LossyLink | undefined;
  const teardown = async (): Promise<void> => {
    link?.proc.stdin?.end();
    if (link && link.proc.exitCode === null) link.proc.kill('SIGTERM');
    for (const ns of made.reverse()) await ip('netns', 'del', ns).catch(() => undefined);
  };
  try {
    for (const ns of [client, server]) {
      await ip('netns', 'add', ns);
      made.push(ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    link = new LossyLink(spawn(relay, [devC, devS, '12345'], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await link.next('ready');
    await ip('link', 'set', devC, 'netns', client);
    await ip('link', 'set', devS, 'netns', server);
    await ip('-n', client, 'addr', 'add', CLIENT_IP, 'peer', SERVER_IP, 'dev', devC);
    await ip('-n', server, 'addr', 'add', SERVER_IP, 'peer', CLIENT_IP, 'dev', devS);
    await ip('-n', client, 'link', 'set', devC, 'up');
    await ip('-n', server, 'link', 'set', devS, 'up');
    return { client, server, link, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}

const bin = (): string => path.join(ROOT, 'bin', 'gamemesh.js');

interface Row {
  loss: number;
  transport: TransportName;
  requests: number;
  p50: number;
  p99: number;
  max: number;
  bytesPerReq: number;
  packetsPerReq: number;
  dropped: number;
}

async function measure(netw: Net, gen: Child, genLines: ReturnType<typeof lineReader>, loss: number, transport: TransportName): Promise<Row> {
  await netw.link.cmd(`loss ${loss / 100}`, 'ok loss');
  gen.proc.stdin?.write(`${JSON.stringify({ cmd: 'run', transport, clients: CLIENTS, warmMs: WARM_MS, ms: SECONDS * 1000 })}\n`);
  let answer: Record<string, unknown> | undefined;
  for (;;) {
    const msg = JSON.parse(await genLines.next(SECONDS * 1000 + 120_000)) as Record<string, unknown>;
    if (msg['event'] === 'window-start') await netw.link.cmd('reset', 'ok reset');
    else if (msg['event'] === 'window-end') continue;
    else {
      answer = msg;
      break;
    }
  }
  // Bytes from the window's start to the last answer: every request of the window, retransmissions included.
  const s = await netw.link.stats();
  if (answer['ok'] !== true) throw new Error(`${transport} at ${loss} % loss: ${String(answer['error'])}`);
  const requests = answer['requests'] as number;
  return {
    loss,
    transport,
    requests,
    p50: answer['p50'] as number,
    p99: answer['p99'] as number,
    max: answer['max'] as number,
    bytesPerReq: (s.cs[1] + s.sc[1]) / requests,
    packetsPerReq: (s.cs[0] + s.sc[0]) / requests,
    dropped: s.cs[2] + s.sc[2],
  };
}

/** JSON lines from a child's stdout, in order. */
function lineReader(proc: ChildProcess): { next(timeoutMs: number): Promise<string> } {
  const queued: string[] = [];
  let wake: (() => void) | undefined;
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
    if (!l.startsWith('{')) return;
    queued.push(l);
    wake?.();
  });
  return {
    async next(timeoutMs: number): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (queued.length === 0) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error('the load generator did not answer');
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
      return queued.shift() as string;
    },
  };
}

export async function run(): Promise<void> {
  const why = await missing();
  if (why) {
    console.log(`## kcp\n\nskipped: ${why}\n`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gamemesh-kcp-bench-${process.pid}-`));
  const children: Child[] = [];
  let netw: Net | undefined;
  const cpu = new CpuLoad();
  try {
    netw = await makeNet(dir);
    await netw.link.cmd(`delay ${DELAY_MS}`, 'ok delay');
    const inServer = ['ip', 'netns', 'exec', netw.server];
    const disco = await startNode([bin(), 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/, { prefix: inServer });
    children.push(disco);
    const sdaddr = `${disco.ready[1]}:${disco.ready[2]}`;
    const routes = path.join(dir, 'routes.json');
    fs.writeFileSync(routes, JSON.stringify(ROUTES));
    await exec('ip', ['netns', 'exec', netw.server, process.execPath, bin(), 'routes', 'push', routes, '--sdaddr', sdaddr], { cwd: ROOT });
    const agent = await startNode(
      [bin(), 'agent', '--sdaddr', sdaddr, '--listen', '127.0.0.1:0', '--host', SERVER_IP, '--tcp-port', '0', '--ws-port', '-1', '--kcp-port', '0', '--max-msgs-per-sec', '1000000', '--heartbeat-sec', '60', '--loglevel', 'warn'],
      /^agent (\S+) listening tcp=\S+:(\d+) ws=\S+ kcp=\S+:(\d+)$/,
      { prefix: inServer },
    );
    children.push(agent);
    const backend = await startNode([`${FIXTURES}gateway-backend.js`, '--sdaddr', sdaddr], /^ready (\S+)$/, { prefix: inServer });
    children.push(backend);
    const gen = await startNode([`${FIXTURES}kcp-load.js`, '--host', SERVER_IP, '--tcp-port', agent.ready[2] as string, '--kcp-port', agent.ready[3] as string], /"event":"ready"/, { prefix: ['ip', 'netns', 'exec', netw.client] });
    children.push(gen);
    const genLines = lineReader(gen.proc);
    // The agent learns the backend from discovery: one short loss-free round proves the path.
    await netw.link.cmd('loss 0', 'ok loss');
    for (let i = 0; ; i++) {
      gen.proc.stdin?.write(`${JSON.stringify({ cmd: 'run', transport: 'tcp', clients: 1, warmMs: 0, ms: 200 })}\n`);
      let msg: Record<string, unknown>;
      do msg = JSON.parse(await genLines.next(30_000)) as Record<string, unknown>;
      while (typeof msg['event'] === 'string');
      if (msg['ok'] === true && (msg['requests'] as number) > 0) break;
      if (i >= 50) throw new Error(`the agent does not route echo requests: ${JSON.stringify(msg)}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const rows: Row[] = [];
    for (const loss of LOSSES) for (const t of TRANSPORTS) rows.push(await measure(netw, gen, genLines, loss, t));
    report(rows);
  } finally {
    for (const c of children.reverse()) await c.stop();
    await netw?.teardown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(loadNote(cpu));
}

function report(rows: readonly Row[]): void {
  const tcpOf = (loss: number): Row | undefined => rows.find((r) => r.loss === loss && r.transport === 'tcp');
  printTable(
    `request/response through the agent, ${CLIENTS} clients x 1 in flight, ${DELAY_MS} ms added to every packet each way, ${SECONDS} s per case`,
    ['loss', 'transport', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'p99 vs TCP', 'bytes/req', 'packets/req', 'bytes vs TCP'],
    rows.map((r) => {
      const tcp = tcpOf(r.loss);
      return [
        `${r.loss} %`,
        r.transport,
        fmtInt(r.requests),
        fmtNum(r.p50, 1),
        fmtNum(r.p99, 1),
        fmtNum(r.max, 0),
        tcp && r.transport !== 'tcp' ? `${fmtNum(r.p99 / tcp.p99, 2)}x` : '',
        fmtInt(r.bytesPerReq),
        fmtNum(r.packetsPerReq, 2),
        tcp && r.transport !== 'tcp' ? `${r.bytesPerReq >= tcp.bytesPerReq ? '+' : ''}${fmtNum((r.bytesPerReq / tcp.bytesPerReq - 1) * 100, 0)} %` : '',
      ];
    }),
  );
  console.log('bytes/req and packets/req: IP packets both ways on the link (headers included), from the window\'s start until its last answer, per request of the window; retransmissions and acks included.');
  const two = rows.filter((r) => r.loss === 2);
  const tcp = two.find((r) => r.transport === 'tcp');
  const kcp = two.find((r) => r.transport === 'kcp-turbo');
  if (tcp && kcp) {
    const ratio = kcp.p99 / tcp.p99;
    console.log(`target: at 2 % loss, KCP (turbo) p99 at most half of TCP's: ${fmtNum(kcp.p99, 1)} ms vs ${fmtNum(tcp.p99, 1)} ms = ${fmtNum(ratio, 2)}x, ${ratio <= 0.5 ? 'met' : 'MISSED'}`);
  }
}

if (isMain(import.meta.url)) {
  await run();
}
