// `npm run example:clusters`: clustergo's many-cluster scenario, every part a
// real process. Game clusters 1 and 2 each have their own discovery, an agent
// and a game; a shared battle cluster 3 exports its battle; every cluster has
// a harbor, cluster 1 two. A player (a game client on its cluster's agent) of
// each game cluster asks for a battle: both games find the exported battle by
// type, and the players meet in it. Alice's whisper goes from the game of
// cluster 1 to the game of cluster 2 through the harbors, and reaches Bob as
// a push; then the harbor carrying the whispers is killed with SIGKILL and
// the next whisper goes through the other one. Exits 0 when all of it held.
//   node dist/examples/clusters/run.js [--etcd HOST:PORT]   (cluster 2's discovery and the center on etcd)
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GameClient, tcpTransport } from '../../src/client-node/index.js';
import { parseLogicalAddr } from '../../src/index.js';
import { harborIndexFor } from '../../src/service/route.js';
import { M, type Whispered } from './messages.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const children: ChildProcess[] = [];
const quiet = { ...process.env, GAMEMESH_LOGLEVEL: process.env['GAMEMESH_LOGLEVEL'] ?? 'warn' };
const TOKEN = 'clusters-example-token';
const CENTER_TOKEN = 'clusters-example-center-token';
const etcdAt = process.argv.indexOf('--etcd');
const etcd = etcdAt >= 0 ? process.argv[etcdAt + 1] : undefined;

function start(name: string, args: string[], readyLine: RegExp, stderr: 'inherit' | 'ignore' = 'inherit'): Promise<RegExpExecArray> {
  const child = spawn(process.execPath, args, { cwd: root, env: quiet, stdio: ['ignore', 'pipe', stderr] });
  children.push(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      process.stdout.write(`[${name}] ${line}\n`);
      const m = readyLine.exec(line);
      if (m) resolve(m);
    });
    child.once('exit', (code, signal) => reject(new Error(`${name} exited with ${code ?? signal} before it was ready`)));
  });
}

async function stopAll(): Promise<void> {
  for (const c of [...children].reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGTERM');
    await once(c, 'exit');
  }
}
process.once('SIGINT', () => void stopAll());

const discovery = async (name: string, token: string) => (await start(name, ['bin/gamemesh.js', 'discovery', '--addr', '127.0.0.1:0', '--token', token, '--grace-ms', '500'], /listening on (\S+)/, 'ignore'))[1] as string;
const harbor = (sdaddr: string, center: string, cluster: number, index: number) =>
  start(`harbor ${cluster}.255.${index}`, ['bin/gamemesh.js', 'harbor', '--sdaddr', sdaddr, '--cluster', String(cluster), '--svcindex', String(index), '--token', TOKEN, '--center', center, '--center-token', CENTER_TOKEN], /harbor \S+ listening/);
const service = (file: string, sdaddr: string, cluster: number, index: number, extra: string[] = []) =>
  start(`${file} ${cluster}.${index}`, [`dist/examples/clusters/${file}.js`, '--sdaddr', sdaddr, '--cluster', String(cluster), '--svcindex', String(index), '--token', TOKEN, ...extra], /ready/);

/** Uploads the route table the agents read (clients' FindBattleReq and WhisperReq go to `game`). */
async function pushRoutes(sdaddr: string): Promise<void> {
  const child = spawn(process.execPath, ['bin/gamemesh.js', 'routes', 'push', 'examples/clusters/routes.json', '--sdaddr', sdaddr, '--token', TOKEN], { cwd: root, env: quiet, stdio: ['ignore', 'ignore', 'inherit'] });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`gamemesh routes push exited with ${code}`);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  process.stdout.write(`ok: ${what}\n`);
}

const clients: GameClient[] = [];
try {
  // With --etcd, the center is an etcd prefix too (etcd here has no auth: the center token guards the harbor-to-harbor links).
  const center = etcd ? `etcd://${etcd}/clusters-example-center-${process.pid}/` : await discovery('center', CENTER_TOKEN);
  const sd1 = await discovery('discovery 1', TOKEN);
  const sd2 = etcd ? `etcd://${etcd}/clusters-example-${process.pid}/` : await discovery('discovery 2', TOKEN);
  const sd3 = await discovery('discovery 3', TOKEN);
  process.stdout.write(`cluster 2's discovery: ${sd2}; the harbors' center: ${center}\n`);
  const harbors = [harbor(sd1, center, 1, 0), harbor(sd1, center, 1, 1)];
  const harborsOf1 = children.slice(-2);
  harbors.push(harbor(sd2, center, 2, 0), harbor(sd3, center, 3, 0));
  await Promise.all(harbors);
  await service('battle', sd3, 3, 1, ['--export']);
  await service('battle', sd3, 3, 2); // not exported: no other cluster ever picks it
  const ports: number[] = [];
  for (const [cluster, sd] of [[1, sd1], [2, sd2]] as const) {
    await service('game', sd, cluster, 1);
    await pushRoutes(sd);
    const agent = await start(`agent ${cluster}`, ['bin/gamemesh.js', 'agent', '--sdaddr', sd, '--cluster', String(cluster), '--token', TOKEN, '--host', '127.0.0.1', '--tcp-port', '0', '--ws-port', '-1'], /listening tcp=\S+:(\d+)/);
    ports.push(Number(agent[1]));
  }

  // The players: game clients on their cluster's agent.
  const bobGot: Whispered[] = [];
  for (const port of ports) {
    const client = new GameClient({ transport: () => tcpTransport('127.0.0.1', port), clientName: 'clusters-example', reconnect: false });
    clients.push(client);
    await client.connect();
  }
  const [alice, bob] = clients as [GameClient, GameClient];
  bob.on(M.Whispered, (w) => void bobGot.push(w));

  // Both find an exported battle by type, through their own cluster's discovery, and meet in it.
  // (The harbors copy the exported battle into clusters 1 and 2 moments after it starts: retry until then.)
  const join = async (client: GameClient, player: string) => {
    for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
      try {
        return await client.request(M.FindBattleReq, M.Roster, { player, match: 'match-1' }, { timeoutMs: 5000 });
      } catch (err) {
        if (Date.now() - t0 > 10_000) throw err;
      }
    }
  };
  const inAlice = await join(alice, 'alice');
  const inBob = await join(bob, 'bob');
  check(inAlice.battle === '3.20.1' && inBob.battle === '3.20.1', `both players are in the exported battle 3.20.1 (alice: ${inAlice.battle}, bob: ${inBob.battle})`);
  check(inBob.players.includes('alice') && inBob.players.includes('bob'), `they meet: the roster is ${inBob.players.join(', ')}`);

  // Alice -> agent 1 -> game 1.10.1 -> harbor of cluster 1 -> harbor 2.255.0 -> game 2.10.1 -> agent 2 -> Bob.
  const whisper = async (text: string, withinMs: number): Promise<number> => {
    const t0 = Date.now();
    while (Date.now() - t0 < withinMs) {
      await alice.request(M.WhisperReq, M.Ack, { to: '2.10.1', to_player: 'bob', text }).catch(() => undefined);
      const until = Date.now() + 150;
      while (Date.now() < until) {
        if (bobGot.some((w) => w.text === text)) return Date.now() - t0;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    throw new Error(`"${text}" did not reach bob within ${withinMs} ms`);
  };
  await whisper('hello from cluster 1', 5000);
  check(true, `alice (cluster 1) -> game 1.10.1 -> harbors -> game 2.10.1 -> bob (cluster 2): ${bobGot.map((w) => `${w.from}: ${w.text}`).join(' | ')}`);

  // Kill -9 the harbor of cluster 1 that carries these whispers; the next one goes through the other.
  const victim = harborIndexFor(parseLogicalAddr('2.10.1'), 2);
  const killed = harborsOf1[victim] as ChildProcess;
  killed.kill('SIGKILL');
  await once(killed, 'exit');
  const ms = await whisper('hello again, after a harbor died', 5000);
  check(ms < 1000, `harbor 1.255.${victim} killed with SIGKILL; the next whisper went through the other harbor in ${ms} ms`);
  process.stdout.write('clusters example: done\n');
} catch (err) {
  process.stderr.write(`clusters example failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  for (const c of clients) c.close();
  await stopAll();
}
