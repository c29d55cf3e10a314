/**
 * A session has one identity, and a backend that restarts gets its clients
 * back: through a real agent over real sockets. A bind that would change
 * the session's uid is refused (and merges nothing); a backend restarted
 * under the same id is re-announced its bound clients with their sessions
 * before any of their messages, and one that cannot restore a client
 * unbinds it, so the client gets `unauthenticated` and joins again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeTcpFrame } from '../src/client/frame.js';
import { ClientMessages } from '../src/client/messages.js';
import type { ClientInfo } from '../src/gateway/backend.js';
import { SESSION_UID } from '../src/gateway/identity.js';
import { RpcError } from '../src/service/errors.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { answers, echoBurst, startBackendMesh, type BackendMesh, type Outcome } from './helpers/backend-mesh.js';
import type { RawTcpClient } from './helpers/gateway.js';
import { cleanupStack } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

let nextSeq = 100;
async function ask(c: RawTcpClient, text: string): Promise<Outcome> {
  const seq = nextSeq++;
  c.write(echoBurst([text], seq));
  return (await answers(c, [seq], 5000))[0] as Outcome;
}
/** An "auth" request (EchoResp is routed auth): only a client bound to the backend gets through the agent. */
async function askAuth(c: RawTcpClient, text: string): Promise<Outcome> {
  const seq = nextSeq++;
  c.write(encodeTcpFrame(EchoResp.id, seq, EchoResp.encode({ text })));
  return (await answers(c, [seq], 5000))[0] as Outcome;
}
const text = (o: Outcome) => (o.ok ? o.text : `${o.code}: ${o.message}`);

test('the first bind sets the uid of a session; a bind to another uid is refused and merges nothing', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  await mesh.startBackend((backend) => {
    backend.handle(EchoReq, EchoReq, async (req, ctx) => {
      const [verb, arg = ''] = req.text.split(/:(.*)/s);
      if (verb === 'bind') await ctx.bind(JSON.parse(arg) as Record<string, string>);
      return { text: JSON.stringify(ctx.session) };
    });
  });
  const c = await mesh.client();
  assert.equal(text(await ask(c, 'bind:{"uid":"alice","name":"Alice"}')), '{}');
  assert.deepEqual(JSON.parse(text(await ask(c, 'show'))), { uid: 'alice', name: 'Alice' });
  // Binding the same user again, with more data, is fine.
  await ask(c, 'bind:{"uid":"alice","level":"3"}');
  for (const attempt of ['{"uid":"bob"}', '{"uid":"bob","role":"admin"}', '{"uid":""}']) {
    const o = await ask(c, `bind:${attempt}`);
    assert.equal(o.ok, false, attempt);
    if (!o.ok) {
      assert.equal(o.code, 'bad_request', attempt);
      assert.match(o.message, attempt === '{"uid":""}' ? /uid must not be empty/ : /is already signed in as user "alice"; a connection has one identity and cannot become "bob"/);
    }
  }
  assert.deepEqual(JSON.parse(text(await ask(c, 'show'))), { uid: 'alice', name: 'Alice', level: '3' }, 'the refused binds merged nothing');
  // A bind without a uid merges like before.
  await ask(c, 'bind:{"guild":"owls"}');
  assert.equal((JSON.parse(text(await ask(c, 'show'))) as Record<string, string>)[SESSION_UID], 'alice');
  // Another connection is another identity.
  const d = await mesh.client();
  await ask(d, 'bind:{"uid":"bob"}');
  assert.equal((JSON.parse(text(await ask(d, 'show'))) as Record<string, string>)[SESSION_UID], 'bob');
});

/** A backend that keeps who joined in memory, as a chat service does, and rebuilds it from restores. */
async function chatBackend(mesh: BackendMesh, restored: ClientInfo[], refuse: ReadonlySet<string> = new Set()) {
  const joined = new Set<string>();
  const started = await mesh.startBackend((backend) => {
    backend.handle(EchoReq, EchoReq, async (req, ctx) => {
      const [verb, arg = ''] = req.text.split(/:(.*)/s);
      if (verb !== 'join') throw new RpcError('bad_request', 'unknown verb');
      await ctx.bind({ [SESSION_UID]: arg });
      joined.add(arg);
      return { text: `joined ${arg}` };
    });
    backend.handle(EchoResp, EchoReq, (_req, ctx) => {
      const uid = ctx.session[SESSION_UID] ?? '';
      if (!joined.has(uid)) throw new RpcError('bad_request', `${uid || '?'} has not joined`);
      return { text: `hello ${uid}` };
    });
    backend.onClientRestored(async (client) => {
      // Restoring may take a while (a database read): the client's messages wait for it.
      await sleep(20);
      const uid = client.session[SESSION_UID] ?? '';
      if (refuse.has(uid)) throw new Error(`no record of ${uid}`);
      restored.push(client);
      joined.add(uid);
    });
  });
  return { ...started, joined };
}

test('a backend restarted under the same id gets its bound clients back before their next message', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const first: ClientInfo[] = [];
  const v1 = await chatBackend(mesh, first);
  const [carol, dave, eve] = [await mesh.client(), await mesh.client(), await mesh.client()];
  for (const [c, uid] of [[carol, 'carol'], [dave, 'dave']] as const) {
    assert.equal(text(await ask(c, `join:${uid}`)), `joined ${uid}`);
    assert.equal(text(await askAuth(c, 'hi')), `hello ${uid}`);
  }
  assert.equal(text(await askAuth(eve, 'hi')), 'unauthenticated: echo.EchoResp needs a session bound by echo');
  eve.destroy();

  // carol fires auth requests all through the restart.
  const seen: string[] = [];
  let firing = true;
  const loop = (async () => {
    while (firing) {
      seen.push(text(await askAuth(carol, 'hi')));
      await sleep(5);
    }
  })();
  await v1.node.stop();
  await waitFor(() => seen.some((s) => s.startsWith('unavailable')), 5000, 'carol to see the backend down');
  const restored: ClientInfo[] = [];
  const v2 = await chatBackend(mesh, restored);
  assert.equal(v2.node.id, v1.node.id);
  await waitFor(() => new Set(restored.map((c) => c.id)).size === 2, 5000, 'both bound clients restored');
  const upAt = seen.length;
  await waitFor(() => seen.length > upAt + 20, 5000, 'carol to go on');
  firing = false;
  await loop;

  // Once per new link: twice when both sides dialed at once and one link replaced the other.
  assert.deepEqual([...new Set(restored.map((c) => c.session[SESSION_UID]))].sort(), ['carol', 'dave'], 'only the bound clients, with their sessions');
  assert.ok(restored.length === 2 || restored.length === 4, `${restored.length} restores`);
  assert.ok(restored.every((c) => c.agent === mesh.agent.node.id));
  assert.deepEqual(first, [], 'the first backend had nothing to restore');
  // Never "has not joined": the restore ran before each client's next message.
  const outcomes = new Set(seen.map((s) => s.replace(/:.*/, '')));
  assert.deepEqual([...outcomes].filter((o) => o !== 'hello carol' && o !== 'unavailable'), [], [...outcomes].join(', '));
  assert.equal(seen.at(-1), 'hello carol');
  assert.equal(text(await askAuth(dave, 'hi')), 'hello dave');
  // The client was told the backend went down and came back.
  const notices = carol.frames.filter((f) => f.msgId === ClientMessages.BackendStatus.id).map((f) => ClientMessages.BackendStatus.decode(f.body));
  assert.deepEqual(notices.map((n) => [n.service, n.up]), [['echo', false], ['echo', true]]);
});

test('a client the restarted backend cannot restore is unbound: unauthenticated until it joins again, same identity', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const v1 = await chatBackend(mesh, []);
  const [mallory, frank] = [await mesh.client(), await mesh.client()];
  await ask(mallory, 'join:mallory');
  await ask(frank, 'join:frank');
  await v1.node.stop();
  const restored: ClientInfo[] = [];
  await chatBackend(mesh, restored, new Set(['mallory']));
  await waitFor(() => restored.length >= 1, 5000, 'frank restored');
  await sleep(100);
  assert.equal(text(await askAuth(frank, 'hi')), 'hello frank');
  let o = await askAuth(mallory, 'hi');
  assert.equal(text(o), 'unauthenticated: echo.EchoResp needs a session bound by echo');
  // It joins again, as itself: the session's identity survived the unbind.
  o = await ask(mallory, 'join:someone-else');
  assert.match(text(o), /^bad_request: .*already signed in as user "mallory"/);
  assert.equal(text(await ask(mallory, 'join:mallory')), 'joined mallory');
  assert.equal(text(await askAuth(mallory, 'hi')), 'hello mallory');
});

test('restores are sent in bounded batches', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startBackendMesh(defer);
  const v1 = await chatBackend(mesh, []);
  const clients = await Promise.all(Array.from({ length: 30 }, () => mesh.client()));
  // Big sessions: 30 clients with 20 KB each must not make one frame of 600 KB.
  await Promise.all(clients.map((c, i) => ask(c, `join:u${i}-${'x'.repeat(20_000)}`)));
  await v1.node.stop();
  const restored: ClientInfo[] = [];
  await chatBackend(mesh, restored);
  await waitFor(() => new Set(restored.map((c) => c.id)).size === 30, 5000, 'all 30 restored');
  const { restoreBatches } = await import('../src/gateway/restore.js');
  const batches = [...restoreBatches(clients.map((_, i) => ({ id: i, session: { uid: 'x'.repeat(20_000) } })))];
  assert.ok(batches.length >= 3, `${batches.length} batches`);
  assert.equal(batches.flat().length, 30);
});
