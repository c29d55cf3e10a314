import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { pino } from 'pino';
import { DiscoveryClient, DiscoveryServer } from '../src/discovery/index.js';
import { discoveryBehaviour, type Backend } from './suites/discovery-behaviour.js';
import { registryClaims } from './suites/registry-claims.js';

const dir = mkdtempSync(join(tmpdir(), 'gm-disc-'));
const graceMs = 400;
let server: DiscoveryServer;
let port = 0;
let n = 0;

async function startServer(): Promise<void> {
  server = await new DiscoveryServer({ port, datafile: join(dir, 'db'), graceMs, logger: pino({ level: 'silent' }) }).start();
  port = server.address.port;
}

before(startServer);
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const backend: Backend = {
  name: 'built-in server',
  graceMs,
  connect: (name) => DiscoveryClient.connect({ addr: `127.0.0.1:${port}`, name, reconnectMinMs: 20, reconnectMaxMs: 200 }),
  restart: async () => {
    await server.stop();
    await startServer();
  },
  prefix: () => `t${++n}/`,
};
discoveryBehaviour(backend);
registryClaims(backend);
