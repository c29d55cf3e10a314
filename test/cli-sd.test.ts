/**
 * `gamemesh sd` against a real discovery process: what each verb prints, on
 * which stream, and with which exit code (0 ok, 1 key not found, 2 usage or
 * connection error).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serviceKey, type ServiceDesc } from '../src/discovery/types.js';
import { BIN, connectClient, freePort, runCli, spawnNode, startDiscovery, type CliResult } from './helpers/proc.js';

const GAME: ServiceDesc = { name: 'game', id: 'game#1@dev', host: '127.0.0.1', port: 1234, meta: {} };

function sd(addr: string, ...args: string[]): Promise<CliResult> {
  return runCli(['sd', '--addr', addr, ...args]);
}

/** Exactly one non-empty line, prefixed like every sd diagnostic. */
function assertOneLine(stderr: string, re: RegExp): void {
  assert.match(stderr, /^gamemesh sd: [^\n]+\n$/, `stderr should be one line: ${JSON.stringify(stderr)}`);
  assert.match(stderr, re);
}

test('setvalue, getvalue, viewkey, deletevalue', { timeout: 30_000 }, async (t) => {
  const server = await startDiscovery(t);
  const addr = server.addr;
  const value = 'hello world ✓ "quoted" -x';

  const set = await sd(addr, 'setvalue', 'cfg/motd', value);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /^revision \d+\n$/);
  assert.equal(set.stderr, '');

  const get = await sd(addr, 'getvalue', 'cfg/motd');
  assert.deepEqual(get, { code: 0, signal: null, stdout: value, stderr: '' }, 'getvalue prints exactly the value');

  const missing = await sd(addr, 'getvalue', 'cfg/nope');
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assertOneLine(missing.stderr, /key not found: cfg\/nope/);

  await Promise.all([sd(addr, 'setvalue', 'cfg/a', '1'), sd(addr, 'setvalue', 'other/z', 'zz')]);
  const all = await sd(addr, 'viewkey');
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout, `cfg/a = 1\ncfg/motd = ${value}\nother/z = zz\n`);
  const cfg = await sd(addr, 'viewkey', 'cfg/');
  assert.equal(cfg.stdout, `cfg/a = 1\ncfg/motd = ${value}\n`);
  assert.equal((await sd(addr, 'viewkey', 'none/')).stdout, '');

  const del = await sd(addr, 'deletevalue', 'cfg/motd');
  assert.equal(del.code, 0, del.stderr);
  assert.equal((await sd(addr, 'getvalue', 'cfg/motd')).code, 1, 'the key is gone');
  const delAgain = await sd(addr, 'deletevalue', 'cfg/motd');
  assert.equal(delAgain.code, 1);
  assertOneLine(delAgain.stderr, /key not found: cfg\/motd/);
  assert.equal((await sd(addr, 'viewkey')).stdout, 'cfg/a = 1\nother/z = zz\n');
});

test('an unreachable server or bad usage: exit 2, one line on stderr', { timeout: 30_000 }, async () => {
  const port = await freePort(); // free a moment ago, so nothing listens there
  const started = Date.now();
  const res = await sd(`127.0.0.1:${port}`, 'getvalue', 'x');
  assert.equal(res.code, 2);
  assert.equal(res.stdout, '');
  assertOneLine(res.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.ok(Date.now() - started < 5000, 'fails fast instead of retrying');

  const usage = await runCli(['sd', '--addr', `127.0.0.1:${port}`, 'frobnicate']);
  assert.equal(usage.code, 2);
  assertOneLine(usage.stderr, /frobnicate/);

  const timeout = await runCli(['sd', '--addr', `127.0.0.1:${port}`, '--timeout', 'soon', 'viewkey']);
  assert.equal(timeout.code, 2);
  assertOneLine(timeout.stderr, /--timeout must be a non-negative integer, got soon/);
});

test('viewsvc shows registered services; clearvalue keeps them', { timeout: 30_000 }, async (t) => {
  const server = await startDiscovery(t);
  const addr = server.addr;
  const client = await connectClient(t, { addr });

  const empty = await sd(addr, 'viewsvc');
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout, '');

  await client.register(GAME);
  await client.register({ ...GAME, id: 'game#2@dev', port: 1235, meta: { zone: 'eu' } });
  for (const k of ['a', 'b', 'c']) await client.put(`cfg/${k}`, k);

  const view = await sd(addr, 'viewsvc');
  assert.equal(view.code, 0, view.stderr);
  assert.equal(view.stdout, 'game\tgame#1@dev\t127.0.0.1:1234\t{}\ngame\tgame#2@dev\t127.0.0.1:1235\t{"zone":"eu"}\n');

  const clear = await sd(addr, 'clearvalue');
  assert.equal(clear.code, 0, clear.stderr);
  assert.equal(clear.stdout, 'deleted 3 key(s)\n');
  assert.deepEqual(
    (await client.list('')).map((kv) => kv.key),
    ['_claim/id/game#1@dev', '_claim/id/game#2@dev', serviceKey('game', 'game#1@dev'), serviceKey('game', 'game#2@dev')],
    'registrations and their id claims',
  );
  assert.equal((await sd(addr, 'viewsvc')).stdout, view.stdout, 'services survive clearvalue');
});

test('watch prints put and delete events as they happen', { timeout: 30_000 }, async (t) => {
  const server = await startDiscovery(t);
  const client = await connectClient(t, { addr: server.addr });
  await client.put('cfg/a', '1');

  const watch = spawnNode(t, BIN, ['sd', '--addr', server.addr, 'watch', 'cfg/'], 'sd watch');
  await watch.waitForStdout(/^snapshot cfg\/a = 1\n/m, 10_000);

  await client.put('other/x', 'not watched');
  const rev = await client.put('cfg/b', 'two words');
  const put = await watch.waitForStdout(/^put cfg\/b = two words \(rev (\d+)\)\n/m, 5000);
  assert.equal(Number(put[1]), rev);

  const delRev = (await client.txn([], [{ type: 'delete', key: 'cfg/a' }])).revision;
  await watch.waitForStdout(new RegExp(`^delete cfg/a \\(rev ${delRev}\\)\\n`, 'm'), 5000);

  assert.equal(watch.stdout, `snapshot cfg/a = 1\nput cfg/b = two words (rev ${rev})\ndelete cfg/a (rev ${delRev})\n`, 'nothing outside the prefix');
  const exit = await watch.kill('SIGTERM', 5000);
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${watch.stderr}`);
});
