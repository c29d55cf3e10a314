/**
 * examples/stream-gate with real processes: discovery, the game node and the
 * gate each in their own process, and clients on real TCP sockets.
 * `npm run example:stream-gate` itself; 1,000 clients at once, each getting
 * exactly its own bytes back; kill -9 of the game node closing every client
 * connection, and a new game node serving new clients; the line protocol.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, spawnNode, startDiscovery, within, type Cleanup, type Proc } from './helpers/proc.js';

const EXAMPLE = path.join(ROOT, 'dist', 'examples', 'stream-gate');
const CLIENTS = 1000;

async function startGame(t: Cleanup, sdaddr: string, mode = 'echo'): Promise<Proc> {
  const game = spawnNode(t, path.join(EXAMPLE, 'game.js'), ['--sdaddr', sdaddr, '--loglevel', 'warn', '--mode', mode], 'game');
  await game.waitForStdout(/game game#0@dev ready/, 10_000);
  return game;
}

async function startGate(t: Cleanup, sdaddr: string): Promise<{ gate: Proc; port: number }> {
  const gate = spawnNode(t, path.join(EXAMPLE, 'gate.js'), ['--sdaddr', sdaddr, '--loglevel', 'warn'], 'gate');
  const m = await gate.waitForStdout(/gate listening on \S+:(\d+)/, 10_000);
  return { gate, port: Number(m[1]) };
}

/** A client socket that collects what it receives and knows when it closed. */
class Client {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  received: Buffer[] = [];
  bytes = 0;
  private waiter: (() => void) | undefined;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => {}); // a reset is one way of being closed
    this.socket.on('data', (c: Buffer) => {
      this.received.push(c);
      this.bytes += c.length;
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  async connected(): Promise<void> {
    await within(once(this.socket, 'connect'), 10_000, 'a client connection');
  }

  /** Resolves once `n` bytes have arrived. */
  until(n: number, ms: number): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (this.bytes >= n) {
            this.waiter = undefined;
            resolve();
          }
        };
        this.waiter = check;
        check();
      }),
      ms,
      `${n} bytes back (got ${this.bytes})`,
    );
  }
}

test('npm run example:stream-gate: three processes, 10 clients, each gets its own bytes back; exit 0', async () => {
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, ['dist/examples/stream-gate/run.js'], { cwd: ROOT, timeout: 60_000 }, (err, out) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out });
    });
  });
  assert.equal(code, 0, stdout);
  assert.equal(stdout.split('\n').filter((l) => /^\[client \d+\] sent \d+ bytes, got \d+ back, identical$/.test(l)).length, 10);
  assert.match(stdout, /10 clients, each got its own bytes back unchanged, done/);
});

test('1,000 clients through the gate get exactly their own bytes; kill -9 of the game node closes every client connection', async (t) => {
  const sd = await startDiscovery(t);
  const game = await startGame(t, sd.addr);
  const { gate, port } = await startGate(t, sd.addr);
  const clients: Client[] = [];
  t.after(() => {
    for (const c of clients) c.socket.destroy();
  });
  // Connect in batches (the listen backlog), then all talk at once.
  for (let i = 0; i < CLIENTS; i += 200) {
    const batch = Array.from({ length: 200 }, () => new Client(port));
    await Promise.all(batch.map((c) => c.connected()));
    clients.push(...batch);
  }
  const sent = clients.map((_, i) => randomBytes(4096 + (i % 97) * 64));
  clients.forEach((c, i) => c.socket.write(sent[i] as Buffer));
  await within(
    Promise.all(clients.map((c, i) => c.until((sent[i] as Buffer).length, 30_000))),
    40_000,
    'every echo',
  );
  clients.forEach((c, i) => assert.ok(Buffer.concat(c.received).equals(sent[i] as Buffer), `client ${i} got exactly its own bytes back`));
  // Every client still connected, streams open; then the game node dies without a word.
  assert.equal(clients.filter((c) => c.socket.destroyed).length, 0);
  await game.kill('SIGKILL');
  await within(Promise.all(clients.map((c) => c.closed)), 15_000, 'every client connection to close after the game node died');
  assert.ok(gate.running, 'the gate survives');
  // A new game node: new clients are served again.
  await startGame(t, sd.addr);
  const again = new Client(port);
  clients.push(again);
  await again.connected();
  const data = randomBytes(10_000);
  again.socket.write(data);
  await again.until(data.length, 15_000);
  assert.ok(Buffer.concat(again.received).equals(data));
});

test('the line protocol: PING, WHO, ECHO, ONLINE, unknown commands, QUIT', async (t) => {
  const sd = await startDiscovery(t);
  await startGame(t, sd.addr, 'lines');
  const { port } = await startGate(t, sd.addr);
  const c = new Client(port);
  await c.connected();
  c.socket.write('PING\nWHO\nECHO hello there\nONLINE\nDANCE\nQUIT\n');
  await within(c.closed, 10_000, 'the game to end the stream after QUIT');
  const lines = Buffer.concat(c.received).toString().split('\n');
  assert.equal(lines[0], 'PONG');
  assert.match(lines[1] as string, /^you are 127\.0\.0\.1:\d+ via gate#0@dev, on game#0@dev$/);
  assert.equal(lines[2], 'hello there');
  assert.equal(lines[3], '1');
  assert.equal(lines[4], 'ERR unknown command');
  assert.equal(lines[5], 'BYE');
});
