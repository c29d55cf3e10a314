/**
 * `gamemesh client --proto` and `gamemesh bot --proto`: a project's own
 * messages from the terminal, against a cluster from gamemesh/testing
 * (an echo service behind an agent and the login). Real CLI processes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { GatewayBackend } from '../src/gateway/backend.js';
import { ServiceNode } from '../src/service/node.js';
import { startTestCluster, type TestCluster } from '../src/testing/index.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { BIN, ROOT } from './helpers/proc.js';

const run = promisify(execFile);
const PROTO = path.join(ROOT, 'examples', 'echo');
let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster({
    routes: [{ msgId: EchoReq.id, name: 'echo.EchoReq', service: 'echo', rule: 'pass' }],
    login: true,
    services: [
      {
        name: 'echo',
        async start(config) {
          const node = new ServiceNode({ name: 'echo', config });
          new GatewayBackend(node).handle(EchoReq, EchoResp, (req, client) => {
            if (req.text === 'fail') throw new Error('asked to fail');
            return { text: `${client.session['token'] ? 'with token' : 'no token'}: ${req.text}`, n: req.n + 1, server: node.id };
          });
          return node.start();
        },
      },
    ],
  });
});
after(() => cluster.stop());

async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('gamemesh client --proto sends one request and prints its answer as JSON', async () => {
  const login = cluster.loginUrl as string;
  const res = await cli(['client', '--login', login, '--user', 'alice', '--proto', PROTO, '--send', 'echo.EchoReq', '--json', '{"text":"hi","n":41}']);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout) as unknown, { text: 'with token: hi', n: 42, server: cluster.agents[0]?.node.instances('echo')[0]?.id });

  const tcp = await cli(['client', '--login', login, '--user', 'bob', '--proto', PROTO, '--send', 'echo.EchoReq', '--tcp']);
  assert.equal(tcp.code, 0, tcp.stderr);
  assert.equal((JSON.parse(tcp.stdout) as { text: string }).text, 'with token: ');
});

test('gamemesh client --proto: bad input is one clear line and exit code 2; a refusal is exit code 1', async () => {
  const login = cluster.loginUrl as string;
  const base = ['client', '--login', login, '--user', 'carol', '--proto', PROTO];
  const cases: Array<[string[], RegExp]> = [
    [['--send', 'echo.Nope'], /--send: unknown message echo.Nope/],
    [['--send', 'echo.EchoReq', '--json', '{text'], /--json is not valid JSON/],
    [['--send', 'echo.EchoReq', '--json', '[1]'], /--json must be a JSON object/],
    [['--send', 'echo.EchoResp'], /which message answers echo.EchoResp\? pass --expect/],
  ];
  for (const [args, message] of cases) {
    const res = await cli([...base, ...args]);
    assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, message);
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
  }
  const missing = await cli(['client', '--login', login, '--user', 'x', '--proto', path.join(ROOT, 'no-such-dir'), '--send', 'a.B']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read the proto folder/);

  const refused = await cli([...base, '--send', 'echo.EchoReq', '--json', '{"text":"fail"}']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /echo.EchoReq failed/);
  const noLogin = await cli(['client', '--login', 'http://127.0.0.1:1', '--user', 'x', '--proto', PROTO, '--send', 'echo.EchoReq']);
  assert.equal(noLogin.code, 1);
  assert.match(noLogin.stderr, /login failed: cannot reach/);
});

test('gamemesh bot --proto: clients send the request for the duration, then the percentiles', async () => {
  const res = await cli(['bot', '--login', cluster.loginUrl as string, '--proto', PROTO, '--send', 'echo.EchoReq', '--json', '{"text":"load"}', '--clients', '5', '--duration', '1.5', '--rate', '4']);
  assert.equal(res.code, 0, res.stdout + res.stderr);
  const m = /5\/5 logged in; (\d+) answers, 0 errors; latency ms p50 [\d.]+ p95 [\d.]+ p99 [\d.]+ max [\d.]+/.exec(res.stdout);
  assert.ok(m, res.stdout);
  // 5 clients x 4/s x 1.5 s = 30, give or take the first period and a slow machine.
  assert.ok(Number(m[1]) >= 10 && Number(m[1]) <= 35, `${m[1]} answers`);

  const failing = await cli(['bot', '--login', cluster.loginUrl as string, '--proto', PROTO, '--send', 'echo.EchoReq', '--json', '{"text":"fail"}', '--clients', '2', '--duration', '0.5']);
  assert.equal(failing.code, 1);
  assert.match(failing.stdout, /\d+ errors/);
});
