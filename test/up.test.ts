/**
 * `gamemesh up`: the supervisor running stand-in services
 * (test/fixtures/up/svc.ts), which append what happens to them to an events
 * file, so that the order of things across processes can be checked. Nothing
 * listens on any port.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { formatLogLine, LineSplitter, Printer, useColor } from '../src/up/logs.js';
import { ClusterFileError, ClusterStartError, parseClusterFile, startCluster, type Cluster, type StartOptions } from '../src/up/supervisor.js';
import { BIN, Proc, ROOT, runCli, tempDir, waitFor, within } from './helpers/proc.js';

/** Relative to ROOT, the services' working directory: paths in a cluster file are relative to it. */
const SVC = 'dist/test/fixtures/up/svc.js';

interface Fixture {
  dir: string;
  log: string;
  /** A service running the fixture; `ready: 'is ready'` unless overridden. */
  svc(name: string, args?: string[], more?: Record<string, unknown>): Record<string, unknown>;
  write(cluster: Record<string, unknown>): string;
  /** `event name` for every line of the events file. */
  events(): string[];
  /** Of processes that noted `event`, of service `name` if given. */
  pids(event?: string, name?: string): number[];
}

function fixture(t: TestContext): Fixture {
  const dir = tempDir(t, 'gamemesh-up-');
  const log = path.join(dir, 'events.log');
  const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const fx: Fixture = {
    dir,
    log,
    svc: (name, args = [], more = {}) => ({ name, run: ['node', SVC, '--name', name, '--log', log, ...args], ready: 'is ready', ...more }),
    write: (cluster) => {
      const file = path.join(dir, 'cluster.json');
      writeFileSync(file, JSON.stringify(cluster, null, 2));
      return file;
    },
    events: () => lines().map((l) => l.split(' ').slice(0, 2).join(' ')),
    pids: (event = 'start', name?: string) => lines()
      .map((l) => l.split(' '))
      .filter((p) => p[0] === event && (name === undefined || p[1] === name))
      .map((p) => Number(p[2])),
  };
  // Whatever went wrong, no stand-in outlives its test.
  t.after(() => fx.pids().forEach(kill));
  return fx;
}

interface Run {
  cluster: Cluster;
  output(): string;
}

function run(t: TestContext, file: string, options: StartOptions = {}): Run {
  let out = '';
  const cluster = startCluster(file, { cwd: ROOT, color: false, write: (s) => (out += s), ...options });
  t.after(() => cluster.stop());
  return { cluster, output: () => out };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

const state = (c: Cluster, name: string) => c.services.find((s) => s.name === name)?.state;

test('services start in file order, each once the one before is ready; output is prefixed; stop() goes in reverse', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const file = fx.write({
    name: 'order',
    services: [
      fx.svc('alpha', ['--ready-after', '300']),
      fx.svc('b', ['--ready-after', '100', '--exit', '0'], { ready: undefined, oneshot: true }),
      fx.svc('c', ['--ready-after', '100']),
      fx.svc('d', [], { ready: undefined }),
    ],
    urls: ['http://${http}/'],
  });
  const { cluster, output } = run(t, file);
  await within(cluster.ready, 5000, 'the cluster to be ready');
  await waitFor(() => fx.events().includes('start d'), 2000, 'd to note its start');
  // d has no ready pattern: it counts as ready once started.
  assert.deepEqual(fx.events().slice(0, 8), ['start alpha', 'ready alpha', 'start b', 'ready b', 'exit b', 'start c', 'ready c', 'start d']);
  assert.deepEqual(
    cluster.services.map((s) => s.state),
    ['ready', 'done', 'ready', 'ready'],
  );
  const out = output();
  assert.match(out, /^alpha \| hello from alpha$/m);
  assert.match(out, /^b {5}\| hello from b$/m);
  assert.match(out, /^c {5}\| WARN {2}\[fixture\] a warning n=1$/m, 'stderr is prefixed too, and pino lines are shortened');
  assert.match(out, /^alpha \| ready in \d/m);
  assert.match(out, /^b {5}\| done in \d/m);
  assert.match(out, /cluster order is up: open http:\/\/127\.0\.0\.1:8080\/\n/);
  assert.ok(out.indexOf('cluster order is up') > out.indexOf('d     | ready in'), 'the banner comes once everything is ready');

  const pids = cluster.services.filter((s) => s.state === 'ready').map((s) => s.pid as number);
  assert.equal(pids.length, 3);
  assert.ok(pids.every(alive));
  await within(cluster.stop(), 5000, 'stop()');
  assert.deepEqual(
    fx.events().filter((e) => e.startsWith('stop')),
    ['stop d', 'stop c', 'stop alpha'],
  );
  assert.deepEqual(
    pids.filter(alive),
    [],
    'every child is gone',
  );
  assert.deepEqual(
    cluster.services.map((s) => s.state),
    ['stopped', 'done', 'stopped', 'stopped'],
  );
});

test('a service that dies is restarted, with a growing delay that starts over once it has stayed up', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const marker = path.join(fx.dir, 'crashed');
  const file = fx.write({
    name: 'restart',
    services: [
      fx.svc('flaky', ['--crash-after', '100', '--marker', marker]),
      // Exits right after its ready line, every time.
      fx.svc('looper', ['--exit', '1']),
    ],
  });
  const { cluster, output } = run(t, file, { restartDelayMs: 100, maxRestartDelayMs: 300 });
  await within(cluster.ready, 5000, 'the cluster to be ready');
  const flaky = cluster.services[0];
  await waitFor(() => flaky?.restarts === 1 && flaky.state === 'ready', 5000, 'flaky to be restarted and ready');
  const [firstPid, secondPid] = fx.pids('start', 'flaky');
  assert.equal(flaky?.pid, secondPid);
  assert.deepEqual(fx.pids('crash'), [firstPid]);
  assert.equal(alive(firstPid as number), false);
  assert.match(output(), /^flaky {2}\| exited with code 3; restarting in 0\.1s$/m);
  assert.match(output(), /^flaky {2}\| ready again$/m);

  // 0.1, 0.2, then the cap (not 0.4).
  await waitFor(() => (cluster.services[1]?.restarts ?? 0) >= 3, 5000, 'looper to be restarted three times');
  const delays = [...output().matchAll(/^looper \| exited with code 1; restarting in ([\d.]+)s$/gm)].map((m) => m[1]);
  assert.deepEqual(delays.slice(0, 3), ['0.1', '0.2', '0.3']);
  await cluster.stop();

  // Up longer than stableAfterMs (0 here) every time: the delay never grows.
  const again = run(t, fx.write({ name: 'stable', services: [fx.svc('looper', ['--exit', '1'])] }), { restartDelayMs: 100, stableAfterMs: 0 });
  await within(again.cluster.ready, 5000, 'the cluster to be ready');
  await waitFor(() => (again.cluster.services[0]?.restarts ?? 0) >= 3, 5000, 'three restarts');
  const stable = [...again.output().matchAll(/restarting in ([\d.]+)s$/gm)].map((m) => m[1]);
  assert.deepEqual(stable.slice(0, 3), ['0.1', '0.1', '0.1']);
});

test('a failing oneshot aborts the start with a clear message and stops what had started', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const file = fx.write({
    name: 'broken',
    services: [fx.svc('first'), fx.svc('routes', ['--exit', '2'], { ready: undefined, oneshot: true }), fx.svc('never')],
  });
  const { cluster, output } = run(t, file);
  const err = await within(
    cluster.ready.then(
      () => assert.fail('ready resolved'),
      (e: unknown) => e,
    ),
    5000,
    'the start to fail',
  );
  assert.ok(err instanceof ClusterStartError);
  assert.equal(err.service, 'routes');
  assert.match(err.message, /^cluster broken did not start: oneshot service routes exited with code 2\n/);
  assert.match(err.message, /last output of routes:\n {2}hello from routes\n/);
  assert.match(err.message, /the services already started were stopped/);
  assert.deepEqual(fx.events(), ['start first', 'ready first', 'start routes', 'ready routes', 'exit routes', 'stop first']);
  assert.deepEqual(fx.pids().filter(alive), []);
  assert.equal(state(cluster, 'first'), 'stopped');
  assert.equal(state(cluster, 'never'), 'pending');
  assert.doesNotMatch(output(), /is up/);
});

test('a service not ready in time, one that exits before it is ready and one that cannot be run all abort the start', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const failure = async (services: Record<string, unknown>[], options: StartOptions = {}) => {
    const { cluster } = run(t, fx.write({ name: 'slow', services }), options);
    return within(
      cluster.ready.then(
        () => assert.fail('ready resolved'),
        (e: Error) => e.message,
      ),
      5000,
      'the start to fail',
    );
  };
  const slow = await failure([fx.svc('first'), fx.svc('slowpoke', ['--never-ready'])], { startTimeoutMs: 2500 });
  assert.match(slow, /^cluster slow did not start: service slowpoke was not ready \(no stdout line matching \/is ready\/\) within 2\.5s\n/);
  assert.match(slow, /last output of slowpoke:\n {2}hello from slowpoke\n {2}WARN {2}\[fixture\] a warning n=1\n/);
  assert.deepEqual(fx.pids().filter(alive), [], 'both were stopped');

  const early = await failure([{ name: 'quitter', run: ['node', '-e', 'console.log("bye"); process.exit(4)'], ready: 'never' }]);
  assert.match(early, /service quitter exited with code 4 before it was ready\nlast output of quitter:\n {2}bye\n/);

  const missing = await failure([{ name: 'ghost', run: ['./no-such-program-here'] }]);
  assert.match(missing, /service ghost could not be started: spawn \.\/no-such-program-here ENOENT/);
});

test('stop() kills a service that ignores SIGTERM once the stop timeout has passed', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const { cluster, output } = run(t, fx.write({ name: 'stubborn', services: [fx.svc('mule', ['--ignore-term'])] }), { stopTimeoutMs: 300 });
  await within(cluster.ready, 5000, 'the cluster to be ready');
  const pid = cluster.services[0]?.pid as number;
  await within(cluster.stop(), 3000, 'stop()');
  assert.equal(alive(pid), false);
  assert.match(output(), /^mule \| did not stop within 0\.3s of SIGTERM; killing it$/m);
  assert.match(output(), /^mule \| stopped \(killed by SIGKILL\)$/m);
});

test('variables: defaults, file values, overrides, ${service} and $$; GAMEMESH_SDADDR and env; an etcd sdaddr skips discovery', { timeout: 10_000 }, async (t) => {
  const fx = fixture(t);
  const file = fx.write({
    name: 'vars',
    vars: { greeting: 'hello', port: 9000 },
    env: { GAMEMESH_TOKEN: 'tok-${name}' },
    services: [
      fx.svc('discovery', [], { role: 'discovery' }),
      fx.svc('echo', ['--echo', '${greeting}', '$${literal}', '${port}'], { env: { OWN: '${service}@${sdaddr}' } }),
    ],
    urls: ['http://${http}/play', 'ws://127.0.0.1:${port}/'],
  });

  const plain = run(t, file);
  await within(plain.cluster.ready, 5000, 'the cluster to be ready');
  assert.match(plain.output(), /^echo +\| args=\["hello","\$\{literal\}","9000"\] sdaddr=127\.0\.0\.1:8900 token=tok-vars own=echo@127\.0\.0\.1:8900$/m);
  assert.deepEqual(plain.cluster.urls, ['http://127.0.0.1:8080/play', 'ws://127.0.0.1:9000/']);
  assert.equal(plain.cluster.vars['sdaddr'], '127.0.0.1:8900');
  assert.match(plain.output(), /cluster vars is up; open:\n {4}http:\/\/127\.0\.0\.1:8080\/play\n {4}ws:\/\/127\.0\.0\.1:9000\/\n/);
  await plain.cluster.stop();

  const etcd = run(t, file, { vars: { sdaddr: 'etcd://127.0.0.1:2379', http: '127.0.0.1:9999', greeting: 'bye' } });
  await within(etcd.cluster.ready, 5000, 'the cluster to be ready');
  assert.equal(state(etcd.cluster, 'discovery'), 'skipped');
  assert.match(etcd.output(), /^discovery \| skipped: discovery is etcd \(etcd:\/\/127\.0\.0\.1:2379\)$/m);
  assert.match(etcd.output(), /^echo +\| args=\["bye","\$\{literal\}","9000"\] sdaddr=etcd:\/\/127\.0\.0\.1:2379 token=tok-vars own=echo@etcd:\/\/127\.0\.0\.1:2379$/m);
  assert.deepEqual(etcd.cluster.urls, ['http://127.0.0.1:9999/play', 'ws://127.0.0.1:9000/']);
  await etcd.cluster.stop();
  assert.deepEqual(
    fx.events().filter((e) => e.startsWith('start')),
    ['start discovery', 'start echo', 'start echo'],
  );

  assert.throws(() => startCluster(file, { vars: { nope: 'x' } }), /--var nope: the cluster file has no variable "nope" \(it has: greeting, http, hub, port, sdaddr\)/);
});

test('a bad cluster file is rejected with an error naming the field', async (t) => {
  const ok = { name: 'a', run: ['node', 'x.js'] };
  const cases: [unknown, RegExp][] = [
    ['{ "name": "x", ', /^f\.json: not valid JSON: .*/],
    [[], /^f\.json: the file must hold a JSON object$/],
    [{ name: 'x' }, /^f\.json: services: must be a non-empty array of services, got nothing$/],
    [{ name: 'x', services: [] }, /^f\.json: services: must be a non-empty array/],
    [{ name: 'bad name!', services: [ok] }, /^f\.json: name: must be a name of letters/],
    [{ name: 'x', servics: [ok] }, /^f\.json: servics: unknown field \(known: name, vars, env, secrets, services, urls, description\)$/],
    [{ name: 'x', services: ['a'] }, /^f\.json: services\[0\]: must be an object with name and run, got "a"$/],
    [{ name: 'x', services: [{ name: 'a' }] }, /^f\.json: services\[0\]\.run \(a\): must be a non-empty array of strings, got nothing$/],
    [{ name: 'x', services: [{ name: 'a', run: ['node', 3] }] }, /^f\.json: services\[0\]\.run\[1\] \(a\): must be a string, got 3$/],
    [{ name: 'x', services: [ok, ok] }, /^f\.json: services\[1\]\.name: "a" is used by an earlier service; names must be unique$/],
    [{ name: 'x', services: [{ ...ok, raedy: 'x' }] }, /^f\.json: services\[0\]\.raedy \(a\): unknown field/],
    [{ name: 'x', services: [{ ...ok, ready: '(' }] }, /^f\.json: services\[0\]\.ready \(a\): not a valid regular expression/],
    [{ name: 'x', services: [{ ...ok, ready: 'x', oneshot: true }] }, /^f\.json: services\[0\]\.ready \(a\): a oneshot service is ready when it exits with code 0; remove ready$/],
    [{ name: 'x', services: [{ ...ok, oneshot: 'yes' }] }, /^f\.json: services\[0\]\.oneshot \(a\): must be true or false, got "yes"$/],
    [{ name: 'x', services: [{ ...ok, role: 'db' }] }, /^f\.json: services\[0\]\.role \(a\): must be one of discovery, hub, got "db"$/],
    [{ name: 'x', services: [{ ...ok, env: { X: { y: 1 } } }] }, /^f\.json: services\[0\]\.env\.X \(a\): must be a string, got \{"y":1\}$/],
    [{ name: 'x', vars: { name: 'y' }, services: [ok] }, /^f\.json: vars\.name: \$\{name\} is set by gamemesh up; pick another name$/],
    [{ name: 'x', vars: { 'a-b': 'y' }, services: [ok] }, /^f\.json: vars\.a-b: a variable name is/],
    [{ name: 'x', urls: 'http://x', services: [ok] }, /^f\.json: urls: must be an array of strings, got "http:\/\/x"$/],
  ];
  for (const [content, expected] of cases) {
    const text = typeof content === 'string' ? content : JSON.stringify(content);
    assert.throws(() => parseClusterFile(text, 'f.json'), (err: Error) => err instanceof ClusterFileError && expected.test(err.message), `${text} -> ${expected}`);
  }

  // Unknown variables surface before anything is started.
  const dir = tempDir(t, 'gamemesh-up-');
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ name: 'x', vars: { a: '1' }, services: [{ name: 'a', run: ['node', '${nope}'] }] }));
  assert.throws(() => startCluster(file), /c\.json: services\[0\]\.run\[1\] \(a\): unknown variable \$\{nope\} \(known: a, http, hub, name, sdaddr, service\)$/);
  assert.throws(() => startCluster(path.join(dir, 'missing.json')), /missing\.json: cannot read the cluster file: ENOENT/);
});

test('gamemesh up: prints the URL banner, and on SIGINT stops everything in reverse order and exits 0', { timeout: 15_000 }, async (t) => {
  const fx = fixture(t);
  const file = fx.write({ name: 'cli', vars: { greeting: 'hi' }, services: [fx.svc('one'), fx.svc('two', ['--echo', '${greeting}'])], urls: ['http://${http}/'] });
  const proc = new Proc('gamemesh up', process.execPath, [BIN, 'up', file, '--http', '127.0.0.1:9999', '--var', 'greeting=yo'], { ...process.env, NO_COLOR: '1' });
  t.after(() => proc.stop());
  await proc.waitForStdout(/cluster cli is up: open http:\/\/127\.0\.0\.1:9999\/\n/, 10_000);
  assert.match(proc.stdout, /^two \| args=\["yo"\]/m);
  const pids = fx.pids();
  assert.equal(pids.length, 2);
  assert.ok(pids.every(alive));

  proc.child.kill('SIGINT');
  const exit = await within(proc.exited, 10_000, 'gamemesh up to exit');
  assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr);
  assert.match(proc.stderr, /SIGINT: stopping cluster cli/);
  assert.deepEqual(
    fx.events().filter((e) => e.startsWith('stop')),
    ['stop two', 'stop one'],
  );
  assert.deepEqual(pids.filter(alive), []);
});

test('gamemesh up: a second SIGINT kills everything at once; usage and file errors exit 2', { timeout: 15_000 }, async (t) => {
  const fx = fixture(t);
  const file = fx.write({ name: 'cli', services: [fx.svc('mule', ['--ignore-term'])] });
  const proc = new Proc('gamemesh up', process.execPath, [BIN, 'up', file], { ...process.env, NO_COLOR: '1' });
  t.after(() => proc.stop());
  await proc.waitForStdout(/cluster cli is up\n/, 10_000);
  const [pid] = fx.pids();
  proc.child.kill('SIGINT');
  await proc.waitForStdout(/mule \| stopping\n/, 5000);
  proc.child.kill('SIGINT');
  const exit = await within(proc.exited, 5000, 'gamemesh up to exit');
  assert.equal(exit.code, 130);
  assert.match(proc.stderr, /SIGINT again: killing every service/);
  await waitFor(() => !alive(pid as number), 2000, 'the service to be gone');

  const bad = path.join(fx.dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ name: 'x', services: [{ name: 'a' }] }));
  const r = await runCli(['up', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^gamemesh up: .*bad\.json: services\[0\]\.run \(a\): must be a non-empty array of strings/);
  const none = await runCli(['up']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /which cluster file\?/);
  const badVar = await runCli(['up', file, '--var', 'oops']);
  assert.equal(badVar.code, 2);
  assert.match(badVar.stderr, /--var wants NAME=VALUE, got "oops"/);
});

test('logs: colors follow TTY, FORCE_COLOR and NO_COLOR; pino lines are shortened; lines are split and prefixed', () => {
  assert.equal(useColor({ isTTY: true }, {}), true);
  assert.equal(useColor({ isTTY: false }, {}), false);
  assert.equal(useColor({}, { FORCE_COLOR: '1' }), true);
  assert.equal(useColor({ isTTY: true }, { FORCE_COLOR: '0' }), false);
  assert.equal(useColor({ isTTY: true }, { NO_COLOR: '1', FORCE_COLOR: '1' }), false);

  const line = JSON.stringify({ level: 50, time: 1, pid: 2, hostname: 'h', name: 'hub', msg: 'it broke', channel: 'news', n: 3, obj: { a: 1 }, err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } });
  assert.equal(formatLogLine(line), 'ERROR [hub] it broke channel=news n=3 obj={"a":1} err="boom"\nError: boom\n    at x');
  assert.equal(formatLogLine('{"level":30,"msg":"two words","s":"a b"}'), 'INFO  two words s="a b"');
  assert.equal(formatLogLine('{"level":30,'), '{"level":30,', 'not JSON after all: as it is');
  assert.equal(formatLogLine('plain text'), 'plain text');
  assert.equal(formatLogLine('{"level":40,"msg":"m"}', true), '\x1b[33mWARN \x1b[0m m');

  const lines: string[] = [];
  const split = new LineSplitter((l) => lines.push(l), 8);
  split.push('one\r\ntw');
  split.push('o\nthree-is-long');
  split.end();
  assert.deepEqual(lines, ['one', 'two', 'three-is', '-long']);

  let out = '';
  const printer = new Printer(['a', 'long-name'], (s) => (out += s), true);
  printer.line('a', 'x');
  printer.note('long-name', 'y');
  assert.equal(out, '\x1b[36ma        \x1b[0m | x\n\x1b[32mlong-name\x1b[0m | \x1b[1my\x1b[0m\n');
});
