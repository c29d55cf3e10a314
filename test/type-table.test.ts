/**
 * Type numbers per cluster (config/types): assigned once per name by
 * compare-and-set, also when many services start at once; gamemesh's own
 * services get their well-known numbers; --svctype is checked against the
 * table; a broken table is refused with a message that says how to fix it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DiscoveryClient } from '../src/discovery/client.js';
import { getJSON } from '../src/discovery/values.js';
import { unpackAddr } from '../src/service/identity.js';
import { resolveServiceType, ServiceTypeError, TYPES_KEY } from '../src/service/type-table.js';
import { cleanupStack, makeNode, startDiscoveryServer, startNode } from './helpers/mesh.js';

test('twenty names racing on an empty table get twenty distinct numbers, each once and for all', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const clients = await Promise.all(Array.from({ length: 5 }, () => DiscoveryClient.connect({ addr })));
  defer(() => Promise.all(clients.map((c) => c.close())));
  const names = ['agent', 'hub', 'login', ...Array.from({ length: 17 }, (_, i) => `svc${i}`)];
  // Every name asked for by several clients at once.
  const got = await Promise.all(names.flatMap((name, i) => clients.map((c, j) => resolveServiceType(c, name, undefined).then((type) => [name, type, i + j] as const))));
  const byName = new Map<string, number>();
  for (const [name, type] of got) {
    assert.equal(byName.get(name) ?? type, type, `${name} got one number`);
    byName.set(name, type);
  }
  assert.equal(new Set(byName.values()).size, names.length, 'no two names share a number');
  assert.deepEqual([byName.get('agent'), byName.get('hub'), byName.get('login')], [1, 2, 3], "gamemesh's own services get their well-known numbers");
  for (const [name, type] of byName) if (name.startsWith('svc')) assert.ok(type >= 16 && type <= 254, `${name}: ${type}`);
  assert.deepEqual(await getJSON(clients[0]!, TYPES_KEY), Object.fromEntries([...byName].sort(([a], [b]) => (a < b ? -1 : 1))));
  assert.equal(await resolveServiceType(clients[1]!, 'svc3', undefined), byName.get('svc3'), 'asked again: the same number');
});

test('--svctype: a free number is taken, a disagreeing or taken one is refused at start, 255 is the harbor\'s', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const game = await startNode(defer, addr, { name: 'game', config: { svctype: 40 } });
  assert.equal(game.logicalAddress, '1.40.0');
  const again = await startNode(defer, addr, { name: 'game', config: { svctype: 40, svcindex: 1 } });
  assert.equal(again.logicalAddress, '1.40.1');
  const hub = await startNode(defer, addr, { name: 'hub' });
  assert.equal(unpackAddr(hub.addr).type, 2);

  const refusals: Array<[string, number, RegExp]> = [
    ['game', 41, /^service game has type 40 in config\/types, but --svctype says 41/],
    ['social', 40, /^type 40 is service game's in config\/types; service social cannot have it too/],
    ['social', 2, /^type 2 is service hub's/],
    ['social', 255, /^type 255 is reserved for harbors/],
  ];
  for (const [name, svctype, message] of refusals) {
    const node = makeNode(defer, addr, { name, config: { svctype, svcindex: 5 } });
    await assert.rejects(node.start(), (e: unknown) => e instanceof ServiceTypeError && message.test(e.message), `${name} --svctype ${svctype}`);
  }
  const harbor = await startNode(defer, addr, { name: 'harbor' });
  assert.equal(harbor.logicalAddress, '1.255.0');
  // A type given in code is a fixed number like --svctype, and --svctype wins over it.
  const coded = await startNode(defer, addr, { name: 'coded', type: 50, config: { svctype: 51 } });
  assert.equal(coded.logicalAddress, '1.51.0');
});

test('a broken table is refused with a way out', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const d = await DiscoveryClient.connect({ addr });
  defer(() => d.close());
  for (const [value, message] of [
    ['not json', /config\/types is not JSON; fix it or delete it/],
    ['[1,2]', /must be a JSON object/],
    ['{"a":1,"b":1}', /gives type 1 to both a and b/],
    ['{"a":300}', /a has 300, not a type number/],
  ] as const) {
    await d.put(TYPES_KEY, value);
    await assert.rejects(resolveServiceType(d, 'x', undefined), (e: unknown) => e instanceof ServiceTypeError && message.test(e.message), value);
  }
  await d.delete(TYPES_KEY);
  assert.equal(await resolveServiceType(d, 'x', undefined), 16);
});
