// `npm run example:echo`: starts discovery, the echo server and the client
// as three processes; exits 0 once the client has printed its 10 replies.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const children: ChildProcess[] = [];
const quiet = { ...process.env, GAMEMESH_LOG_LEVEL: process.env['GAMEMESH_LOG_LEVEL'] ?? 'warn' };

function start(name: string, args: string[], readyLine: RegExp): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, args, { cwd: root, env: quiet, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      process.stdout.write(`[${name}] ${line}\n`);
      if (readyLine.test(line)) resolve({ child, line });
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
  });
}

/** Stops the newest first, so services deregister before discovery goes away. */
async function stopAll(): Promise<void> {
  for (const c of [...children].reverse()) {
    if (c.exitCode !== null) continue;
    c.kill('SIGTERM');
    await once(c, 'exit');
  }
}
process.once('SIGINT', () => void stopAll());

try {
  const discovery = await start('discovery', ['bin/gamemesh.js', 'discovery', '--addr', '127.0.0.1:0'], /listening on/);
  const sdaddr = /listening on (\S+)/.exec(discovery.line)?.[1] as string;
  const env = ['--sdaddr', sdaddr, '--loglevel', 'warn'];
  await start('server', ['dist/examples/echo/server.js', ...env], /ready/);
  const client = spawn(process.execPath, ['dist/examples/echo/client.js', ...env], { cwd: root, env: quiet, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(client);
  let replies = 0;
  createInterface({ input: client.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    process.stdout.write(`[client] ${line}\n`);
    if (line.startsWith('reply ')) replies++;
  });
  const [code] = (await once(client, 'exit')) as [number | null];
  if (code !== 0 || replies !== 10) throw new Error(`client exited with ${code} after ${replies} replies`);
  process.stdout.write('echo example: 10 replies, done\n');
} catch (err) {
  process.stderr.write(`echo example failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
