/**
 * KCP interop with the reference implementation: ../shared/vendor/kcp/ikcp.c
 * (skywind3000's, unchanged) is compiled at test time, with the machine's C
 * compiler and in a temporary folder, together with our small driver
 * test/fixtures/kcp/kcp-client.c, into a UDP game client. Against a real
 * `gamemesh agent --kcp-port 0` process and a gw-backend process, that client
 * does the cookie handshake and then exchanges gamemesh frames both ways:
 * echoes of up to 30,000 bytes (many KCP fragments each way) checked byte
 * for byte, and server pushes checked for order. In normal and turbo modes,
 * and with 10 % of datagrams dropped both ways by the client, so that each
 * side's retransmissions have to satisfy the other implementation.
 *
 * With CI set, a missing C compiler fails the test instead of skipping it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { pushRoutes, spawnAgent, spawnGwBackend, type AgentProc } from './helpers/gateway.js';
import { findCompiler } from './helpers/kcp.js';
import { GW, routeTable } from './helpers/gw-proto.js';
import { Proc, ROOT, startDiscovery, tempDir, type Cleanup } from './helpers/proc.js';

const run = promisify(execFile);
const VENDOR = path.resolve(ROOT, '..', 'shared', 'vendor', 'kcp');
const DRIVER = path.join(ROOT, 'test', 'fixtures', 'kcp', 'kcp-client.c');

const compiler = await findCompiler();
const vendorMissing = fs.existsSync(path.join(VENDOR, 'ikcp.c')) ? undefined : `the reference KCP sources are not at ${VENDOR}`;
const missing = vendorMissing ?? (compiler ? undefined : 'no C compiler (cc or gcc) on this machine; .ci/run installs gcc');
const skip = missing !== undefined && !process.env['CI'] ? missing : false;

/** Compiles the reference client into a temp dir of the test; returns its path. */
async function buildClient(t: Cleanup): Promise<string> {
  if (missing) assert.fail(missing);
  const dir = tempDir(t, 'gamemesh-kcp-interop-');
  const out = path.join(dir, 'kcp-client');
  await run(compiler as string, ['-O2', '-I', VENDOR, '-o', out, DRIVER, path.join(VENDOR, 'ikcp.c')]);
  return out;
}

const ROUTES = routeTable([
  [GW.EchoReq, 'gw', 'pass'],
  [GW.PushReq, 'gw', 'pass'],
]);

async function runClient(t: Cleanup, bin: string, agent: AgentProc, mode: 'normal' | 'turbo', lossPercent: number, echoes: number, pushes: number): Promise<string> {
  const proc = new Proc(`kcp-client ${mode} ${lossPercent}%`, bin, ['127.0.0.1', String(agent.kcpPort), mode, String(lossPercent), String(echoes), String(pushes)]);
  t.after(() => proc.stop());
  const timer = setTimeout(() => void proc.stop(), 60_000);
  const exit = await proc.exited;
  clearTimeout(timer);
  assert.equal(exit.code, 0, `the reference client failed (${mode}, ${lossPercent}% loss):\n${proc.stdout}\n${proc.stderr}`);
  return proc.stdout;
}

test('the reference KCP implementation (ikcp.c) talks to the agent', { skip, timeout: 180_000 }, async (t) => {
  const bin = await buildClient(t);
  const disco = await startDiscovery(t);
  await pushRoutes(disco.addr, tempDir(t, 'gamemesh-kcp-routes-'), ROUTES);
  const [agent] = await Promise.all([spawnAgent(t, disco.addr, ['--kcp-port', '0']), spawnGwBackend(t, disco.addr)]);
  assert.ok(agent.kcpPort, 'the agent printed its KCP port');

  const cases: ['normal' | 'turbo', number][] = [
    ['normal', 0],
    ['turbo', 0],
    ['normal', 10],
    ['turbo', 10],
  ];
  for (const [mode, loss] of cases) {
    await t.test(`${mode} mode, ${loss}% loss both ways`, async (st) => {
      const out = await runClient(st, bin, agent, mode, loss, 24, 200);
      st.diagnostic(out.trim().split('\n').pop() ?? '');
      // The Challenge answers a 32-byte Hello: never bigger than it.
      assert.match(out, /^challenge size=32$/m);
      assert.match(out, new RegExp(`^accept conv=[1-9]\\d* mode=${mode === 'turbo' ? 1 : 0} mtu=1400 wnd=128$`, 'm'));
      assert.match(out, /^handshake-ack$/m);
      assert.match(out, /^echo ok count=24$/m);
      assert.match(out, /^push ok count=200$/m);
      if (loss > 0) {
        const m = /dropped_in=(\d+) dropped_out=(\d+) retransmits=(\d+)/.exec(out);
        assert.ok(m && Number(m[1]) > 0 && Number(m[2]) > 0, `datagrams were dropped both ways: ${out}`);
        assert.ok(Number(m[3]) > 0, 'ikcp retransmitted what it lost');
      }
    });
  }
});
