import type { ConnectDiscoveryOptions, DiscoveryConnection } from '../discovery/connect.js';
import { clearServices } from '../discovery/claims.js';
import { NODE_STATE_PREFIX, nodeStateId, updateNodeState } from '../discovery/node-state.js';
import { asString } from '../discovery/values.js';
import type { KeyValue } from '../discovery/types.js';
import { intOption, parse, UsageError } from './args.js';
import { connectWithToken, readTokenFile } from './sd-token.js';

const VERBS: Record<string, number[]> = {
  viewsvc: [0, 0],
  clearsvc: [0, 0],
  viewkey: [0, 1],
  getvalue: [1, 1],
  setvalue: [2, 2],
  deletevalue: [1, 1],
  clearvalue: [0, 0],
  watch: [1, 1],
  disable: [1, 1],
  enable: [1, 1],
};

/** Exit codes: 0 ok, 1 key not found, 2 usage or connection error. */
export async function main(argv: string[]): Promise<number> {
  let client: DiscoveryConnection | undefined;
  try {
    const { values, positionals } = parse(argv, {
      addr: { type: 'string', default: '127.0.0.1:8900' },
      token: { type: 'string' },
      tokenfile: { type: 'string' },
      timeout: { type: 'string', default: '3000' },
    });
    const [verb, ...args] = positionals;
    const arity = verb ? VERBS[verb] : undefined;
    if (!verb || !arity) throw new UsageError(`expected one of ${Object.keys(VERBS).join(', ')}${verb ? `, got ${verb}` : ''}`);
    const [min, max] = arity as [number, number];
    if (args.length < min || args.length > max) throw new UsageError(`${verb} takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${args.length}`);
    const timeout = intOption(values['timeout'], 'timeout', 3000);
    const tokenFile = (values['tokenfile'] as string | undefined) ?? process.env['GAMEMESH_TOKEN_FILE'];
    const token = (values['token'] as string | undefined) ?? process.env['GAMEMESH_TOKEN'] ?? (tokenFile ? readTokenFile(tokenFile) : undefined);
    const options: ConnectDiscoveryOptions = { token, name: 'gamemesh-cli', failFast: true, connectTimeoutMs: timeout, requestTimeoutMs: timeout };
    client = (await connectWithToken(String(values['addr']), options, 'gamemesh sd')).client;
    return await runVerb(client, verb, args);
  } catch (err) {
    process.stderr.write(`gamemesh sd: ${(err as Error).message}\n`);
    return 2;
  } finally {
    await client?.close();
  }
}

async function runVerb(client: DiscoveryConnection, verb: string, args: string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const [a = '', b = ''] = args;
  switch (verb) {
    case 'viewsvc': {
      const [services, states] = await Promise.all([client.listServices(), client.list(NODE_STATE_PREFIX)]);
      const stateOf = new Map(states.map((kv) => [nodeStateId(kv.key), asString(kv)]));
      // A node with operator-set state (gamemesh sd disable) shows it in a fifth column.
      for (const s of services) out(`${s.name}\t${s.id}\t${s.host}:${s.port}\t${JSON.stringify(s.meta)}${stateOf.has(s.id) ? `\t${stateOf.get(s.id)}` : ''}`);
      if (services.length === 0) process.stderr.write('no services registered\n');
      return 0;
    }
    case 'clearsvc': {
      // The count is of registrations; their claims go with them. Live services register again at once.
      const registered = (await client.listServices()).length;
      await clearServices(client);
      out(`deleted ${registered} service(s); live ones register again by themselves`);
      return 0;
    }
    case 'viewkey': {
      for (const kv of await client.list(a)) out(`${kv.key} = ${preview(kv)}`);
      return 0;
    }
    case 'getvalue': {
      const kv = await client.get(a);
      if (!kv) {
        process.stderr.write(`gamemesh sd: key not found: ${a}\n`);
        return 1;
      }
      process.stdout.write(kv.value);
      if (process.stdout.isTTY) process.stdout.write('\n');
      return 0;
    }
    case 'setvalue': {
      const value = b === '-' ? await readStdin() : Buffer.from(b, 'utf8');
      out(`revision ${await client.put(a, value)}`);
      return 0;
    }
    case 'deletevalue': {
      if ((await client.delete(a)) === 0) {
        process.stderr.write(`gamemesh sd: key not found: ${a}\n`);
        return 1;
      }
      return 0;
    }
    case 'clearvalue':
      out(`deleted ${await client.clear()} key(s)`);
      return 0;
    case 'watch':
      return watch(client, a);
    case 'disable':
    case 'enable': {
      // A typo must not pass silently: only a registered node can be disabled (enable also cleans up after one that left).
      const known = (await client.listServices()).some((s) => s.id === a);
      if (verb === 'disable' && !known) {
        process.stderr.write(`gamemesh sd: no registered service has id ${a} (see gamemesh sd viewsvc)\n`);
        return 1;
      }
      await updateNodeState(client, a, { available: verb === 'enable' });
      out(`${a} ${verb === 'enable' ? 'is available: it gets new work again' : 'is not available: it gets no new work; its links and clients keep working'}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown verb ${verb}`);
  }
}

async function watch(client: DiscoveryConnection, prefix: string): Promise<number> {
  const w = await client.watch(prefix);
  for (const kv of w.list()) process.stdout.write(`snapshot ${kv.key} = ${preview(kv)}\n`);
  const stop = () => w.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  client.on('disconnected', (reason) => process.stderr.write(`disconnected: ${reason}; reconnecting\n`));
  for await (const ev of w) {
    if (ev.type === 'put') process.stdout.write(`put ${ev.kv.key} = ${preview(ev.kv)} (rev ${ev.kv.modRev})\n`);
    else process.stdout.write(`delete ${ev.key} (rev ${ev.revision})\n`);
  }
  return 0;
}

/** Text values print as they are; binary ones as a size. */
function preview(kv: KeyValue): string {
  const text = asString(kv);
  // eslint-disable-next-line no-control-regex
  if (Buffer.from(text, 'utf8').equals(Buffer.from(kv.value)) && !/[\x00-\x08\x0e-\x1f]/.test(text)) {
    return text.length > 200 ? `${text.slice(0, 200)}… (${kv.value.length} bytes)` : text;
  }
  return `<${kv.value.length} bytes>`;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
