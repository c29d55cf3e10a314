/**
 * The service runtime across real processes: a discovery server process,
 * echo-service fixture processes (test/fixtures/echo-service.ts), and a
 * caller node in this process. Crashes (kill -9), restarts, graceful
 * shutdown on SIGTERM, and the cluster secret on service links.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcError } from '../src/service/errors.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, elapsedSince, expectRpcError, startNode, type Defer } from './helpers/mesh.js';
import { FIXTURES, spawnNode, startDiscovery, waitFor, within, type Cleanup, type Proc } from './helpers/proc.js';

const ECHO_SERVICE = path.join(FIXTURES, 'echo-service.js');
const TOKEN = 'process-test-secret';

interface EchoProc {
  proc: Proc;
  id: string;
  port: number;
}

/** Spawns the echo-service fixture and waits for its `ready <id> <port>` line. */
async function spawnEcho(t: Cleanup, sdaddr: string, opts: { token?: string; svcindex?: number; name?: string } = {}): Promise<EchoProc> {
  const args = ['--sdaddr', sdaddr, '--svcindex', String(opts.svcindex ?? 0), '--name', opts.name ?? 'echo'];
  if (opts.token !== undefined) args.push('--token', opts.token);
  const proc = spawnNode(t, ECHO_SERVICE, args, `echo-service#${opts.svcindex ?? 0}`);
  const m = await proc.waitForStdout(/ready (\S+) (\d+)\n/, 10_000);
  return { proc, id: m[1] as string, port: Number(m[2]) };
}

/** JSON log lines the process printed on stderr. */
function logs(proc: Proc): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of proc.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return out;
}

interface Outcome {
  ok: boolean;
  code?: string;
  server?: string;
  ms: number;
}

/** Calls `echo` back to back until stopped, recording every outcome; never throws. */
function callLoop(defer: Defer, call: () => Promise<{ server: string }>): { outcomes: Outcome[]; stop: () => Promise<void> } {
  // (Each loop has one call in flight at a time.)
  const outcomes: Outcome[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const res = await call();
        outcomes.push({ ok: true, server: res.server, ms: elapsedSince(t0) });
      } catch (err) {
        outcomes.push({ ok: false, code: err instanceof RpcError ? err.code : `not an RpcError: ${String(err)}`, ms: elapsedSince(t0) });
        await sleep(5);
      }
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  defer(stop);
  return { outcomes, stop };
}

test('kill -9 of the callee: calls fail fast with unavailable, and recover by themselves when it restarts', async (t) => {
  const defer = cleanupStack(t);
  const sd = await startDiscovery(t);
  const first = await spawnEcho(t, sd.addr, { token: TOKEN });
  const client = await startNode(defer, sd.addr, { name: 'client', dependencies: ['echo'], config: { token: TOKEN } });
  await within(client.whenReady(), 5000, 'client ready');

  const TIMEOUT = 3000;
  // One caller picks the service by name, the other addresses the instance by id.
  const loops = {
    byName: callLoop(defer, () => client.call('echo', EchoReq, EchoResp, { text: 'ping' }, { timeoutMs: TIMEOUT })),
    byId: callLoop(defer, () => client.call({ id: first.id }, EchoReq, EchoResp, { text: 'ping' }, { timeoutMs: TIMEOUT })),
  };
  const all = () => Object.entries(loops);
  await waitFor(() => all().every(([, l]) => l.outcomes.filter((o) => o.ok).length >= 20), 5000, 'calls to succeed');
  for (const [name, { outcomes }] of all()) {
    assert.ok(
      outcomes.every((o) => o.ok && o.server === first.id),
      `${name}: before the kill every call succeeds: ${JSON.stringify(outcomes.filter((o) => !o.ok).slice(0, 3))}`,
    );
  }

  const exit = await first.proc.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  const killedAt = Object.fromEntries(all().map(([name, l]) => [name, l.outcomes.length]));
  const afterKill = (name: string, l: { outcomes: Outcome[] }) => l.outcomes.slice(killedAt[name]);
  const t0 = performance.now();
  await waitFor(() => all().every(([name, l]) => afterKill(name, l).filter((o) => !o.ok).length >= 30), 3000, 'calls to fail after the kill');
  assert.ok(elapsedSince(t0) < TIMEOUT, 'thirty calls failed in less than one call timeout');
  for (const [name, l] of all()) {
    for (const f of afterKill(name, l).filter((o) => !o.ok)) {
      assert.equal(f.code, 'unavailable', `${name}: a call failed with ${f.code}`);
      assert.ok(f.ms < TIMEOUT / 6, `${name}: a failed call took ${f.ms.toFixed(0)} ms (its timeout is ${TIMEOUT} ms)`);
    }
  }

  // Same instance id, new process, new port; nothing is done to the caller.
  const second = await spawnEcho(t, sd.addr, { token: TOKEN });
  assert.equal(second.id, first.id);
  assert.notEqual(second.port, first.port);
  const restartedAt = Object.fromEntries(all().map(([name, l]) => [name, l.outcomes.length]));
  await waitFor(
    () => all().every(([name, l]) => l.outcomes.slice(restartedAt[name]).filter((o) => o.ok).length >= 20),
    8000,
    'calls to succeed again after the restart',
  );
  for (const [name, l] of all()) {
    await l.stop();
    const firstOk = l.outcomes.findIndex((o, i) => i >= (restartedAt[name] ?? 0) && o.ok);
    const recovered = l.outcomes.slice(firstOk);
    assert.ok(
      recovered.every((o) => o.ok && o.server === second.id),
      `${name}: once recovered, every call succeeds: ${JSON.stringify(recovered.filter((o) => !o.ok).slice(0, 3))}`,
    );
    assert.ok(afterKill(name, l).every((o) => o.ok || o.code === 'unavailable'), `${name}: no call failed with anything but unavailable`);
  }
  assert.ok(second.proc.running, 'the restarted callee is still running');
});

test('SIGTERM: a call in flight completes, new calls are refused, the process exits 0', async (t) => {
  const defer = cleanupStack(t);
  const sd = await startDiscovery(t);
  const echo = await spawnEcho(t, sd.addr, { token: TOKEN });
  const client = await startNode(defer, sd.addr, { name: 'client', dependencies: ['echo'], config: { token: TOKEN } });
  await within(client.whenReady(), 5000, 'client ready');
  assert.equal((await client.call('echo', EchoReq, EchoResp, { text: 'warm-up' })).server, echo.id);

  const slow = client.call('echo', EchoReq, EchoResp, { text: 'sleep:2000', n: 42 }, { timeoutMs: 5000 });
  const slowSettled = slow.then(
    () => performance.now(),
    () => performance.now(),
  );
  await echo.proc.waitForStdout(/begin sleep:2000\n/, 3000);
  const sentTerm = performance.now();
  echo.proc.child.kill('SIGTERM');

  // The callee announces that it is draining: the caller stops picking it...
  await waitFor(() => client.instances('echo').length === 0, 1500, 'the caller to see the callee draining');
  await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'new' }), 'unavailable');
  // ...and when addressed directly, the callee refuses by itself.
  await expectRpcError(client.call({ id: echo.id }, EchoReq, EchoResp, { text: 'new by id' }), 'unavailable', /shutting down/);

  const res = await within(slow, 5000, 'the call in flight');
  assert.equal(res.text, 'sleep:2000');
  assert.equal(res.n, 42);
  assert.equal(res.server, echo.id);
  const exit = await within(echo.proc.exited, 5000, 'the callee to exit');
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${echo.proc.stderr}`);
  assert.ok((await slowSettled) - sentTerm > 500, 'the in-flight call was answered after the SIGTERM, not before it');
  assert.equal(echo.proc.stdout.includes('begin new'), false, 'no new call reached the handler');
  const messages = logs(echo.proc).map((l) => l['msg']);
  assert.ok(messages.includes('stopping') && messages.includes('stopped'), `the callee logged its shutdown: ${JSON.stringify(messages)}`);
});

test('a client with the wrong cluster secret cannot link to a service; the right secret can', async (t) => {
  const defer = cleanupStack(t);
  const sd = await startDiscovery(t);
  const echo = await spawnEcho(t, sd.addr, { token: TOKEN });

  for (const token of ['not-the-secret', undefined]) {
    const label = token ?? 'no secret';
    const intruder = await startNode(defer, sd.addr, { name: `intruder-${token ? 'wrong' : 'none'}`, dependencies: ['echo'], config: { token } });
    let ups = 0;
    intruder.on('peerUp', () => ups++);
    const refusedBefore = logs(echo.proc).filter((l) => l['msg'] === 'refused a link').length;
    await waitFor(() => logs(echo.proc).filter((l) => l['msg'] === 'refused a link').length > refusedBefore, 5000, `the service to refuse the ${label} link`);
    const refusal = logs(echo.proc).filter((l) => l['msg'] === 'refused a link').at(-1);
    assert.match(String(refusal?.['err']), new RegExp(`${intruder.id}.*does not hold the cluster secret`));
    // It keeps being refused: give its redials time, then check nothing came up.
    await sleep(400);
    const t0 = performance.now();
    await expectRpcError(intruder.call('echo', EchoReq, EchoResp, { text: 'let me in' }, { timeoutMs: 3000 }), 'unavailable');
    // Addressed by id, the call makes the node dial again; the refusal fails it at once.
    await expectRpcError(intruder.call({ id: echo.id }, EchoReq, EchoResp, { text: 'let me in' }, { timeoutMs: 3000 }), 'unavailable', /does not hold the cluster secret/);
    assert.ok(elapsedSince(t0) < 1000, `refused calls failed fast (${elapsedSince(t0).toFixed(0)} ms)`);
    assert.equal(ups, 0, `the ${label} client never saw a link come up`);
    assert.equal(intruder.ready, false);
    assert.deepEqual(intruder.instances('echo'), []);
    await intruder.stop();
  }
  assert.equal(echo.proc.stdout.includes('begin'), false);
  assert.equal(
    logs(echo.proc).some((l) => l['msg'] === 'peer up'),
    false,
    'the service never brought a link up',
  );

  const friend = await startNode(defer, sd.addr, { name: 'friend', dependencies: ['echo'], config: { token: TOKEN } });
  await within(friend.whenReady(), 5000, 'the right secret to link');
  assert.equal((await friend.call('echo', EchoReq, EchoResp, { text: 'hello' })).server, echo.id);
  await waitFor(() => logs(echo.proc).some((l) => l['msg'] === 'peer up' && l['peer'] === friend.id), 2000, 'the service to log the link');
});
