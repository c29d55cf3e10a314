// `npm run example:clusters`: clustergo's many-cluster scenario, every part a
// real process. Game clusters 1 and 2 and a shared battle cluster 3 each have
// their own discovery and harbors; cluster 1 has two harbors. A player of
// each game cluster finds the exported battle by type, and they meet in it;
// the game of cluster 1 whispers to the game of cluster 2 through the
// harbors; then the harbor carrying the whispers is killed with SIGKILL and
// the next whisper goes through the other one. Exits 0 when all of it held.
//   node dist/examples/clusters/run.js [--etcd HOST:PORT]   (cluster 2's discovery on etcd)
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseLogicalAddr, ServiceNode, setupLogging } from '../../src/index.js';
import { harborIndexFor } from '../../src/service/route.js';
import { M, PLAYER_TYPE } from './messages.js';

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

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  process.stdout.write(`ok: ${what}\n`);
}

const players: ServiceNode[] = [];
setupLogging({ loglevel: quiet.GAMEMESH_LOGLEVEL });
try {
  const center = await discovery('center', CENTER_TOKEN);
  const sd1 = await discovery('discovery 1', TOKEN);
  const sd2 = etcd ? `etcd://${etcd}/clusters-example-${process.pid}/` : await discovery('discovery 2', TOKEN);
  const sd3 = await discovery('discovery 3', TOKEN);
  process.stdout.write(`cluster 2's discovery: ${sd2}\n`);
  const harbors = [harbor(sd1, center, 1, 0), harbor(sd1, center, 1, 1)];
  const harborsOf1 = children.slice(-2);
  harbors.push(harbor(sd2, center, 2, 0), harbor(sd3, center, 3, 0));
  await Promise.all(harbors);
  await service('battle', sd3, 3, 1, ['--export']);
  await service('battle', sd3, 3, 2); // not exported: no other cluster ever picks it
  await Promise.all([service('game', sd1, 1, 1), service('game', sd2, 2, 1)]);

  // The players: one node per game cluster, in this process.
  for (const [cluster, sdaddr] of [[1, sd1], [2, sd2]] as const) {
    const p = new ServiceNode({ name: 'player', type: PLAYER_TYPE, dependencies: ['game'], config: { sdaddr, cluster, svcindex: 1, token: TOKEN } });
    players.push(await p.start());
    await p.whenReady();
  }
  const [p1, p2] = players as [ServiceNode, ServiceNode];

  // Both find an exported battle by type, through their own cluster's discovery, and meet in it.
  // (The harbors copy the exported battle into clusters 1 and 2 moments after it starts: retry until then.)
  const join = async (p: ServiceNode, player: string) => {
    for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
      try {
        return await p.call('game', M.Join, M.Roster, { player, match: 'match-1' }, { timeoutMs: 5000 });
      } catch (err) {
        if (Date.now() - t0 > 10_000) throw err;
      }
    }
  };
  const alice = await join(p1, 'alice');
  const bob = await join(p2, 'bob');
  check(alice.battle === '3.20.1' && bob.battle === '3.20.1', `both players are in the exported battle 3.20.1 (alice: ${alice.battle}, bob: ${bob.battle})`);
  check(bob.players.includes('alice') && bob.players.includes('bob'), `they meet: the roster is ${bob.players.join(', ')}`);

  // The game of cluster 1 whispers to the game of cluster 2, through the harbors.
  const inbox = async () => (await p2.call('game', M.Inbox, M.InboxList, {})).texts;
  const whisper = async (text: string, withinMs: number): Promise<number> => {
    const t0 = Date.now();
    while (Date.now() - t0 < withinMs) {
      await p1.call('game', M.Tell, M.Ack, { to: '2.10.1', text }).catch(() => undefined);
      const until = Date.now() + 150;
      while (Date.now() < until) {
        if ((await inbox()).some((t) => t.endsWith(text))) return Date.now() - t0;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    throw new Error(`"${text}" did not arrive within ${withinMs} ms`);
  };
  await whisper('hello from cluster 1', 5000);
  check(true, `game 1.10.1 -> harbor of cluster 1 -> harbor 2.255.0 -> game 2.10.1: ${(await inbox()).join(' | ')}`);

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
  for (const p of players) await p.stop();
  await stopAll();
}
