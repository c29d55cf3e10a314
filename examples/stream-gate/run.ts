// `npm run example:stream-gate`: starts discovery, a game node and the gate
// as three processes, sends 10 clients' random bytes through the gate, checks
// that each got exactly its own bytes back, and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const children: ChildProcess[] = [];
const quiet = { ...process.env, GAMEMESH_LOG_LEVEL: process.env['GAMEMESH_LOG_LEVEL'] ?? 'warn' };
const CLIENTS = 10;

function start(name: string, args: string[], readyLine: RegExp): Promise<RegExpExecArray> {
  const child = spawn(process.execPath, args, { cwd: root, env: quiet, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      process.stdout.write(`[${name}] ${line}\n`);
      const m = readyLine.exec(line);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
  });
}

/** Stops the newest first, so services deregister before discovery goes away. */
async function stopAll(): Promise<void> {
  for (const c of [...children].reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGTERM');
    await once(c, 'exit');
  }
}
process.once('SIGINT', () => void stopAll());

/** One client: connects, sends `data`, half-closes, and resolves with what came back. */
async function client(port: number, data: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(data);
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

try {
  const sd = await start('discovery', ['bin/gamemesh.js', 'discovery', '--addr', '127.0.0.1:0'], /listening on (\S+)/);
  const env = ['--sdaddr', sd[1] as string, '--loglevel', 'warn'];
  await start('game', ['dist/examples/stream-gate/game.js', ...env], /ready/);
  const gate = await start('gate', ['dist/examples/stream-gate/gate.js', ...env], /gate listening on \S+:(\d+)/);
  const port = Number(gate[1]);
  const sent = Array.from({ length: CLIENTS }, (_, i) => randomBytes(64 * 1024 + i * 1000));
  const got = await Promise.all(sent.map((data) => client(port, data)));
  got.forEach((back, i) => {
    const ok = back.equals(sent[i] as Buffer);
    process.stdout.write(`[client ${i}] sent ${(sent[i] as Buffer).length} bytes, got ${back.length} back, ${ok ? 'identical' : 'DIFFERENT'}\n`);
    if (!ok) throw new Error(`client ${i} got other bytes back`);
  });
  process.stdout.write(`stream-gate example: ${CLIENTS} clients, each got its own bytes back unchanged, done\n`);
} catch (err) {
  process.stderr.write(`stream-gate example failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
