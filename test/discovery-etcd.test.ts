/**
 * The etcd backend: the shared Discovery behaviour suite against a throwaway
 * etcd, then what only etcd can go through: kill -9 and restart, data loss,
 * an expired lease, a three-member cluster losing its leader, TLS with auth,
 * and the CLI on an etcd:// address.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Etcd3 } from 'etcd3';
import { asString, connectDiscovery, DiscoveryError, EtcdDiscovery, parseEtcdAddr, type EtcdDiscoveryOptions, type KvEvent, type ServiceDesc, type ServiceEvent } from '../src/discovery/index.js';
import { deregisterClaimed, registerClaimed, type ClaimsHost } from '../src/discovery/etcd-claims.js';
import { RegistrationConflict } from '../src/discovery/types.js';
import { EtcdCluster, etcdMissing } from './helpers/etcd.js';
import { BIN, freePort, runCli, spawnNode, tempDir, waitFor } from './helpers/proc.js';
import { discoveryBehaviour, type Backend } from './suites/discovery-behaviour.js';
import { registryClaims } from './suites/registry-claims.js';

/** Lease TTL for the tests: etcd's minimum is about 2 s. */
const TTL = 2;
const PREFIX = 'gm-test/';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function svc(name: string, index: number, port = 1000 + index): ServiceDesc {
  return { name, id: `${name}#${index}@dev`, host: '127.0.0.1', port, meta: {} };
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof DiscoveryError && e.code === code;
}

describe('etcd addresses', () => {
  test('etcd:// and etcds:// parse into endpoints, prefix and TTL', () => {
    assert.deepEqual(parseEtcdAddr('etcd://10.0.0.1:2379'), { endpoints: ['10.0.0.1:2379'], prefix: undefined, tls: false, leaseTtlSec: undefined });
    assert.deepEqual(parseEtcdAddr('etcds://a:2379,b:2379,[::1]:2379/game1?ttl=5'), { endpoints: ['a:2379', 'b:2379', '[::1]:2379'], prefix: 'game1/', tls: true, leaseTtlSec: 5 });
    assert.equal(parseEtcdAddr('etcd://a:1/x/y/').prefix, 'x/y/');
    for (const bad of ['etcd://', 'etcd://host', 'etcd://a:1?ttl=0', 'etcd://a:1?foo=1', 'etcd://a:99999']) {
      assert.throws(() => parseEtcdAddr(bad), isCode('bad_request'), bad);
    }
  });
});

const missing = etcdMissing();
if (missing) {
  // CI must run these; elsewhere a missing etcd only skips them, and says so.
  if (process.env['CI']) test('etcd is installed (required when CI is set)', () => assert.fail(missing));
  else test(`etcd backend (skipped: ${missing})`, { skip: missing }, () => {});
} else {
  let etcd: EtcdCluster;
  let n = 0;
  before(async () => {
    etcd = await EtcdCluster.start(1);
  });
  after(() => etcd?.stop());

  const connect = (name?: string, extra: Partial<EtcdDiscoveryOptions> = {}): Promise<EtcdDiscovery> =>
    EtcdDiscovery.connect({ endpoints: etcd.endpoints, prefix: PREFIX, leaseTtlSec: TTL, ...(name ? { name } : {}), ...extra });

  async function client(t: TestContext, name?: string, extra: Partial<EtcdDiscoveryOptions> = {}): Promise<EtcdDiscovery> {
    const d = await connect(name, extra);
    t.after(() => d.close());
    return d;
  }

  const backend: Backend = {
    name: 'etcd',
    graceMs: TTL * 1000,
    connect: (name) => connect(name),
    restart: () => etcd.restart(0),
    prefix: () => `t${++n}/`,
  };
  discoveryBehaviour(backend);
  registryClaims(backend);

  describe('etcd backend', () => {
    test('keys live under the prefix in etcd, and come back without it', async (t) => {
      const d = await client(t);
      const raw = await client(t, 'raw', { prefix: '' });
      const rev = await d.put('pfx/a', 'x');
      const kv = await raw.get(`${PREFIX}pfx/a`);
      assert.equal(kv?.modRev, rev);
      assert.deepEqual((await d.list('pfx/')).map((e) => e.key), ['pfx/a']);
      assert.equal(await raw.get('pfx/a'), undefined);
    });

    test('etcd-specific refusals map to DiscoveryError codes', async (t) => {
      const d = await client(t);
      // etcd rejects a transaction that writes one key twice (the built-in server applies them in order).
      await assert.rejects(d.txn([], [{ type: 'put', key: 'dup', value: '1' }, { type: 'delete', key: 'dup' }]), isCode('bad_request'));
      await assert.rejects(d.put('big', Buffer.alloc(2 * 1024 * 1024)), isCode('too_large'));
      await assert.rejects(d.txn([{ key: '', modRev: 0 }], []), isCode('bad_request'));
      await d.close();
      await assert.rejects(d.get('x'), isCode('closed'));
    });

    test('an unreachable etcd fails connect with unavailable, fast', async () => {
      const port = await freePort();
      let start = Date.now();
      await assert.rejects(EtcdDiscovery.connect({ endpoints: [`127.0.0.1:${port}`], failFast: true }), (e: unknown) => isCode('unavailable')(e) && /cannot reach etcd/.test((e as Error).message));
      assert.ok(Date.now() - start < 3000, `failFast took ${Date.now() - start} ms`);
      start = Date.now();
      await assert.rejects(EtcdDiscovery.connect({ endpoints: [`127.0.0.1:${port}`], connectTimeoutMs: 800 }), isCode('unavailable'));
      assert.ok(Date.now() - start >= 600, 'retries until connectTimeoutMs');
    });

    test('kill -9 and restart: writes wait it out, registrations stay, clients notice and catch up', async (t) => {
      const owner = await client(t, 'owner');
      const watcher = await client(t, 'watcher');
      await owner.register(svc('k9', 1));
      await owner.put('k9/a', '1');
      const events: KvEvent[] = [];
      const w = await watcher.watch('k9/', { onEvent: (e) => events.push(e) });
      const svcEvents: ServiceEvent[] = [];
      const sw = await watcher.watchServices('k9', { onEvent: (e) => svcEvents.push(e) });
      const seen: string[] = [];
      owner.on('disconnected', () => seen.push('disconnected'));
      owner.on('connected', () => seen.push('connected'));
      await etcd.member(0).kill9();
      await sleep(300);
      // A write while etcd is down waits for it (it surely was not sent), like the built-in client's queue.
      const during = owner.put('k9/c', '3');
      await sleep(400);
      await etcd.startMember(0);
      assert.ok((await during) > 0);
      await waitFor(() => seen.includes('disconnected'), 5000, 'the owner to notice');
      await waitFor(() => owner.connected && watcher.connected, 10_000, 'both clients back');
      assert.ok(seen.indexOf('connected') > seen.indexOf('disconnected'), seen.join(','));
      await owner.put('k9/b', '2');
      await owner.delete('k9/a');
      await waitFor(() => !w.get('k9/a') && w.get('k9/b') !== undefined, 10_000, 'the watcher to catch up');
      await sleep(TTL * 1000 + 500);
      // Seen live or through the re-snapshot (which may order them differently): each exactly once.
      assert.deepEqual(events.map((e) => (e.type === 'put' ? `put ${e.kv.key}=${asString(e.kv)}` : `delete ${e.key}`)).sort(), ['delete k9/a', 'put k9/b=2', 'put k9/c=3']);
      assert.deepEqual(sw.list().map((s) => s.id), [svc('k9', 1).id]);
      assert.deepEqual(svcEvents, [], 'the registration never went away');
      assert.equal((await watcher.listServices('k9')).length, 1);
    });

    test('claims name their owner, not its lease: a client takes its own claims back under a new lease; another is refused', async (t) => {
      const admin = new Etcd3({ hosts: etcd.endpoints });
      t.after(() => admin.close());
      const grant = async () => (await admin.leaseClient.leaseGrant({ TTL: 30 })).ID;
      const claims: ClaimsHost = {
        txn: (req) => admin.kv.txn(req),
        leaseTtl: async (id) => Number((await admin.leaseClient.leaseTimeToLive({ ID: id })).TTL),
        fullKey: (key) => Buffer.from(PREFIX + key),
      };
      const desc: ServiceDesc = { name: 'own', id: 'own#0@dev', host: '127.0.0.1', port: 7001, meta: { addr: '9.9.0' } };
      const [l1, l2, l3] = [await grant(), await grant(), await grant()];
      await registerClaimed(claims, desc, { instance: 'me', lease: l1 });
      // The same client after losing l1 (a missed keepalive, say) while its keys still live under it.
      await registerClaimed(claims, desc, { instance: 'me', lease: l2 });
      for (const key of ['_svc/own/own#0@dev', '_claim/id/own#0@dev', '_claim/addr/9.9.0']) {
        const res = await admin.kv.range({ key: Buffer.from(PREFIX + key) });
        assert.equal(res.kvs[0]?.lease, l2, `${key} moved to the new lease`);
      }
      await assert.rejects(registerClaimed(claims, { ...desc, port: 7002 }, { instance: 'other', lease: l3 }), (e: unknown) => e instanceof RegistrationConflict && (e.retryAfterMs ?? 0) > 25_000);
      await deregisterClaimed(claims, 'own', 'own#0@dev', 'other', l3);
      assert.equal((await admin.kv.range({ key: Buffer.from(`${PREFIX}_claim/id/own#0@dev`) })).kvs.length, 1, "another owner's deregistration removes nothing");
      await deregisterClaimed(claims, 'own', 'own#0@dev', 'me', undefined);
      for (const key of ['_svc/own/own#0@dev', '_claim/id/own#0@dev', '_claim/addr/9.9.0']) {
        assert.equal((await admin.kv.range({ key: Buffer.from(PREFIX + key) })).kvs.length, 0, `the owner removed ${key}`);
      }
    });

    test('a lost lease (expired or revoked) is replaced and the services registered again', async (t) => {
      const owner = await client(t, 'owner');
      const watcher = await client(t, 'watcher');
      const svcEvents: ServiceEvent[] = [];
      const sw = await watcher.watchServices('lease', { onEvent: (e) => svcEvents.push(e) });
      await owner.register(svc('lease', 1, 5001));
      await waitFor(() => sw.list().length === 1, 3000, 'registration');
      const admin = new Etcd3({ hosts: etcd.endpoints });
      t.after(() => admin.close());
      const { leases } = await admin.leaseClient.leaseLeases();
      for (const l of leases) await admin.leaseClient.leaseRevoke({ ID: l.ID }).catch(() => {});
      await waitFor(() => svcEvents.some((e) => e.type === 'remove'), 3000, 'the revocation to remove it');
      await waitFor(() => sw.list().length === 1, 5000, 're-registration');
      assert.deepEqual(svcEvents.map((e) => e.type), ['add', 'remove', 'add']);
      await sleep(TTL * 1000 + 500);
      assert.equal(sw.list()[0]?.port, 5001, 'held by the new lease');
    });

    test('etcd loses its data: services register again, watchers converge on the new state', async (t) => {
      const owner = await client(t, 'owner');
      const watcher = await client(t, 'watcher');
      await owner.register(svc('wipe', 1, 6001));
      await owner.put('wipe/k', 'old');
      const events: KvEvent[] = [];
      const w = await watcher.watch('wipe/', { onEvent: (e) => events.push(e) });
      const sw = await watcher.watchServices('wipe');
      await etcd.restart(0, { wipe: true });
      await waitFor(() => !w.get('wipe/k'), 10_000, 'the lost key to be deleted from the cache');
      assert.deepEqual(events.map((e) => e.type), ['delete']);
      await waitFor(() => sw.list().length === 1, 10_000, 're-registration on the new cluster');
      await owner.put('wipe/k', 'new');
      await waitFor(() => w.get('wipe/k') !== undefined, 5000, 'a write on the new cluster');
      assert.equal(asString(w.get('wipe/k')!), 'new');
      assert.equal((await watcher.listServices('wipe')).length, 1);
    });
  });

  describe('etcd cluster of three', () => {
    test('the leader is killed: KV, watches and registrations keep working on the other two', async (t) => {
      const ttl = TTL;
      const cluster = await EtcdCluster.start(3);
      t.after(() => cluster.stop());
      const conn = async (name: string) => {
        const d = await EtcdDiscovery.connect({ endpoints: cluster.endpoints, leaseTtlSec: ttl, name });
        t.after(() => d.close());
        return d;
      };
      const [owner, watcher, writer] = await Promise.all([conn('owner'), conn('watcher'), conn('writer')]);
      await owner.register(svc('ha', 1));
      const svcEvents: ServiceEvent[] = [];
      const sw = await watcher.watchServices('ha', { onEvent: (e) => svcEvents.push(e) });
      const w = await watcher.watch('c/');
      await writer.put('c/before', '1');
      await waitFor(() => w.get('c/before') !== undefined, 3000, 'a write before the kill');

      const leader = await cluster.leaderIndex();
      await cluster.member(leader).kill9();
      await cluster.waitHealthy(10_000);

      const rev = await writer.put('c/after', '2');
      assert.equal((await writer.get('c/after'))?.modRev, rev);
      const tx = await writer.txn([{ key: 'c/after', modRev: rev }], [{ type: 'put', key: 'c/after', value: '3' }]);
      assert.ok(tx.succeeded);
      await waitFor(() => w.get('c/after') !== undefined && asString(w.get('c/after')!) === '3', 10_000, 'the watcher to see writes after the kill');
      await owner.register(svc('ha', 2));
      await waitFor(() => sw.list().length === 2, 5000, 'a registration after the kill');
      await sleep(ttl * 1000 + 500);
      assert.equal(sw.list().length, 2, 'both registrations outlive the lease TTL');
      assert.deepEqual(svcEvents.filter((e) => e.type === 'remove'), [], 'no registration was lost');
      assert.equal((await writer.listServices('ha')).length, 2);
    });
  });

  describe('TLS and auth', () => {
    test('client certificates and user/password from GAMEMESH_ETCD_*; bad credentials are unauthorized', async (t) => {
      const dir = tempDir(t, 'gm-etcd-tls-');
      makeCerts(dir);
      const file = (f: string) => path.join(dir, f);
      const cluster = await EtcdCluster.start(1, {
        clientScheme: 'https',
        extraArgs: ['--cert-file', file('server.crt'), '--key-file', file('server.key'), '--trusted-ca-file', file('ca.crt'), '--client-cert-auth'],
      });
      t.after(() => cluster.stop());
      const credentials = { rootCertificate: fs.readFileSync(file('ca.crt')), certChain: fs.readFileSync(file('client.crt')), privateKey: fs.readFileSync(file('client.key')) };
      const admin = new Etcd3({ hosts: [`https://localhost:${cluster.member(0).clientPort}`], credentials });
      t.after(() => admin.close());
      await admin.user('root').create('rootpw');
      await admin.user('root').addRole('root');
      await admin.role('gm').create();
      await admin.role('gm').grant({ permission: 'Readwrite', range: admin.range({ prefix: 'gamemesh/' }) });
      await admin.user('gm').create('s3cret');
      await admin.user('gm').addRole('gm');
      await admin.auth.authEnable();

      const env = { GAMEMESH_ETCD_CA: file('ca.crt'), GAMEMESH_ETCD_CERT: file('client.crt'), GAMEMESH_ETCD_KEY: file('client.key'), GAMEMESH_ETCD_USER: 'gm', GAMEMESH_ETCD_PASSWORD: 's3cret' };
      // A host name, as certificates are usually issued (an IP works too, with a Node warning about SNI).
      const addr = `etcds://localhost:${cluster.member(0).clientPort}`;
      const d = await connectDiscovery(addr, { env, etcd: { leaseTtlSec: TTL } });
      t.after(() => d.close());
      await d.put('cfg', 'over tls');
      assert.equal(asString((await d.get('cfg'))!), 'over tls');
      await d.register(svc('tls', 1));
      assert.equal((await d.listServices('tls')).length, 1);

      await assert.rejects(connectDiscovery(addr, { env: { ...env, GAMEMESH_ETCD_PASSWORD: 'wrong' } }), isCode('unauthorized'));
      // Outside the role's prefix.
      await assert.rejects(connectDiscovery(`${addr}/other`, { env }), isCode('unauthorized'));
      // Without the CA, the server's certificate is not trusted.
      await assert.rejects(connectDiscovery(addr, { env: { GAMEMESH_ETCD_USER: 'gm', GAMEMESH_ETCD_PASSWORD: 's3cret' }, failFast: true }), isCode('unavailable'));
    });
  });

  describe('gamemesh sd on etcd://', () => {
    test('verbs work against etcd; watch streams changes', async (t) => {
      const addr = `etcd://${etcd.endpoints[0]}/gm-cli`;
      let r = await runCli(['sd', '--addr', addr, 'setvalue', 'cfg/x', 'hello']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^revision \d+\n$/);
      r = await runCli(['sd', '--addr', addr, 'getvalue', 'cfg/x']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello');
      r = await runCli(['sd', '--addr', addr, 'viewkey', 'cfg/']);
      assert.equal(r.stdout, 'cfg/x = hello\n');
      r = await runCli(['sd', '--addr', addr, 'getvalue', 'cfg/missing']);
      assert.equal(r.code, 1);
      const owner = await connectDiscovery(addr, { etcd: { leaseTtlSec: TTL } });
      t.after(() => owner.close());
      await owner.register(svc('cli', 1, 7001));
      r = await runCli(['sd', '--addr', addr, 'viewsvc']);
      assert.match(r.stdout, /^cli\tcli#1@dev\t127\.0\.0\.1:7001\t\{\}\n$/);

      const watch = spawnNode(t, BIN, ['sd', '--addr', addr, 'watch', 'cfg/'], 'sd watch');
      await watch.waitForStdout(/snapshot cfg\/x = hello\n/, 10_000);
      await owner.put('cfg/y', 'live');
      await watch.waitForStdout(/put cfg\/y = live \(rev \d+\)\n/, 5000);
      await watch.kill('SIGINT');
      assert.equal(watch.exit?.code, 0, watch.stderr);

      r = await runCli(['sd', '--addr', addr, 'clearvalue']);
      assert.match(r.stdout, /^deleted 2 key\(s\)\n$/);
      assert.equal((await owner.listServices('cli')).length, 1, 'clearvalue keeps the registry');
    });

    test('an unreachable etcd exits 2 with one line, within seconds', async () => {
      const port = await freePort();
      const start = Date.now();
      const r = await runCli(['sd', '--addr', `etcd://127.0.0.1:${port}`, 'viewsvc']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^gamemesh sd: cannot reach etcd at 127\.0\.0\.1:\d+: .+\n$/);
      assert.ok(Date.now() - start < 5000, `took ${Date.now() - start} ms`);
    });
  });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl. */
function makeCerts(dir: string): void {
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  fs.writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=gamemesh-test-ca');
  for (const name of ['server', 'client']) {
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=gm-${name}`);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'san.cnf');
  }
}
