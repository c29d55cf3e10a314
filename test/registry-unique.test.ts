/**
 * "A logical address names exactly one live node", with real processes on
 * both discovery backends: a second `gamemesh hub` with a live hub's id, or
 * with its logical address (another group, same index), exits 1 with the
 * one line and the original keeps its registration and keeps working; a
 * hub killed with -9 and started again at once waits out its old
 * registration and takes its id back; `clearsvc` on the live cluster is
 * followed by re-registration within a second.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { connectDiscovery, type DiscoveryConnection, type ServiceDesc } from '../src/discovery/index.js';
import { EtcdCluster, etcdMissing } from './helpers/etcd.js';
import { BIN, Proc, runCli, startDiscovery, waitFor, within, type DiscoveryProc } from './helpers/proc.js';

interface Hub {
  proc: Proc;
  port: number;
}

function spawnHub(t: TestContext, sdaddr: string, extra: readonly string[] = []): Proc {
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  const proc = new Proc('hub', process.execPath, [BIN, 'hub', '--sdaddr', sdaddr, '--loglevel', 'warn', ...extra], env);
  t.after(() => proc.stop());
  return proc;
}

async function startHub(t: TestContext, sdaddr: string, extra: readonly string[] = [], timeoutMs = 15_000): Promise<Hub> {
  const proc = spawnHub(t, sdaddr, extra);
  const m = await proc.waitForStdout(/^hub hub#0@\S+ listening \S+:(\d+)$/m, timeoutMs);
  return { proc, port: Number(m[1]) };
}

/** The newcomer must exit 1 printing exactly `line` on stderr, and nothing else. */
async function refused(t: TestContext, sdaddr: string, extra: readonly string[], line: string, withinMs: number): Promise<number> {
  const started = Date.now();
  const proc = spawnHub(t, sdaddr, extra);
  const exit = await within(proc.exited, withinMs, `the duplicate hub ${extra.join(' ')} to exit`);
  assert.deepEqual(exit, { code: 1, signal: null }, `stdout: ${proc.stdout}\nstderr: ${proc.stderr}`);
  assert.equal(proc.stderr, `gamemesh hub: ${line}\n`);
  assert.equal(proc.stdout, '', 'it never said it was listening');
  return Date.now() - started;
}

function hubs(d: DiscoveryConnection): Promise<string[]> {
  return d.listServices('hub').then((list: ServiceDesc[]) => list.map((s) => `${s.id} ${s.meta['addr']} ${s.port}`));
}

interface Backend {
  name: string;
  /** How long a dead process's registration outlives it. */
  expiryMs: number;
  /** The soonest the old registration can be gone after a kill -9 (etcd: the lease TTL less one keepalive period). */
  goneAfterMs: number;
  start(t: TestContext): Promise<string>;
  /** While every hub is frozen (SIGSTOP): make discovery forget their registrations. */
  forget(t: TestContext): Promise<void>;
}

function suite(backend: Backend): void {
  describe(`one live node per id and address: ${backend.name}`, () => {
    test('a duplicate id or address is refused with one line; the original keeps its registration; kill -9 and a restart take it back', { timeout: 90_000 }, async (t) => {
      const sdaddr = await backend.start(t);
      const d = await connectDiscovery(sdaddr, { name: 'test' });
      t.after(() => d.close());
      const first = await startHub(t, sdaddr);
      const held = `hub#0@dev 1.2.0 ${first.port}`;
      assert.deepEqual(await hubs(d), [held], 'the hub has the well-known type 2');

      // A live holder is refused at once on the built-in server; etcd knows it is live once its lease outlives its TTL.
      const idMs = await refused(t, sdaddr, [], `service id hub#0@dev is held by another process (127.0.0.1:${first.port})`, backend.expiryMs + 10_000);
      const addrMs = await refused(t, sdaddr, ['--svcgroup', 'other'], `logical address 1.2.0 is held by hub#0@dev (127.0.0.1:${first.port})`, backend.expiryMs + 10_000);
      t.diagnostic(`${backend.name}: duplicate id refused in ${idMs} ms, duplicate address in ${addrMs} ms (process start included)`);

      // The newcomers' exits took nothing with them, even once their sessions and leases are long gone.
      await new Promise((r) => setTimeout(r, backend.expiryMs + 500));
      assert.deepEqual(await hubs(d), [held]);
      assert.ok(first.proc.running, 'the original hub still runs');

      // A crash, and the supervisor's restart a moment later: the new process waits for the old registration to expire, then takes it.
      await first.proc.kill('SIGKILL');
      const killed = Date.now();
      const second = await startHub(t, sdaddr, ['--loglevel', 'info'], backend.expiryMs + 15_000);
      const tookMs = Date.now() - killed;
      t.diagnostic(`${backend.name}: the restarted hub registered ${tookMs} ms after the kill -9`);
      // Unless its start took longer than the old registration lived (a loaded machine), it had to wait, and said why.
      if (!/waiting for it to expire/.test(second.proc.stderr)) assert.ok(tookMs >= backend.goneAfterMs, `registered after ${tookMs} ms without waiting: ${second.proc.stderr}`);
      assert.deepEqual(await hubs(d), [`hub#0@dev 1.2.0 ${second.port}`]);

      // clearsvc on the live cluster: the hub is back within a second, claims and all.
      const sw = await d.watchServices('hub');
      t.after(() => sw.stop());
      const cleared = await runCli(['sd', '--addr', sdaddr, 'clearsvc']);
      assert.equal(cleared.code, 0, cleared.stderr);
      assert.equal(cleared.stdout, 'deleted 1 service(s); live ones register again by themselves\n');
      const after = Date.now();
      await waitFor(async () => (await hubs(d)).length === 1, 1000, 'the hub registered again within 1 s', 10);
      t.diagnostic(`${backend.name}: re-registered within ${Date.now() - after} ms of clearsvc returning`);
      await refused(t, sdaddr, ['--svcgroup', 'other'], `logical address 1.2.0 is held by hub#0@dev (127.0.0.1:${second.port})`, backend.expiryMs + 10_000);

      // Cut off for longer than its grace or lease, the hub finds its id taken when it comes back: it must exit, not answer to it too.
      process.kill(second.proc.pid, 'SIGSTOP');
      await backend.forget(t);
      const third = await startHub(t, sdaddr);
      process.kill(second.proc.pid, 'SIGCONT');
      const exit = await within(second.proc.exited, 15_000, 'the stale hub to exit');
      assert.deepEqual(exit, { code: 1, signal: null }, second.proc.stderr);
      assert.match(second.proc.stderr, /another process took this node's registration/);
      await new Promise((r) => setTimeout(r, backend.expiryMs + 500));
      assert.deepEqual(await hubs(d), [`hub#0@dev 1.2.0 ${third.port}`], 'the newcomer keeps it');
    });
  });
}

let builtin: DiscoveryProc | undefined;
suite({
  name: 'built-in server',
  expiryMs: 1500,
  goneAfterMs: 1000,
  start: async (t) => {
    builtin = await startDiscovery(t, { graceMs: 1500 });
    return builtin.addr;
  },
  // A restart without a data file comes back empty.
  forget: async (t) => {
    const port = (builtin as DiscoveryProc).port;
    await builtin?.kill('SIGKILL');
    builtin = await startDiscovery(t, { graceMs: 1500, port });
  },
});

const missing = etcdMissing();
if (missing && process.env['CI']) {
  test('etcd is installed (required when CI is set)', () => assert.fail(missing));
} else if (missing) {
  test(`one live node per id and address on etcd (skipped: ${missing})`, { skip: missing }, () => {});
} else {
  suite({
    name: 'etcd',
    expiryMs: 3000,
    // ttl=2 below; etcd3 renews every TTL/3, so the lease may run out 1.33 s after the last keepalive.
    goneAfterMs: 1300,
    start: async (t) => {
      const etcd = await EtcdCluster.start(1);
      t.after(() => etcd.stop());
      return `etcd://${etcd.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}/unique-test/?ttl=2`;
    },
    // A frozen process sends no keepalives: its lease runs out.
    forget: () => new Promise((r) => setTimeout(r, 4000)),
  });
}
