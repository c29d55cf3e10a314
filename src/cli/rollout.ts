/**
 * `gamemesh status` and `gamemesh drain ID` (docs/operations.md): every
 * service's admin port reached with the cluster token, or, for a node
 * without one, what its registration says and a drain request in the KV
 * (config/nodes/<id> {"drain": true}), which the node takes within a moment.
 */
import type { ConnectDiscoveryOptions, DiscoveryConnection } from '../discovery/connect.js';
import { updateNodeState } from '../discovery/node-state.js';
import type { ServiceDesc } from '../discovery/types.js';
import { intOption, parse, UsageError } from './args.js';
import { connectWithToken, readTokenFile } from './sd-token.js';

const HELP = `usage: gamemesh status [--addr host:port] [--token T | --tokenfile F] [--json] [--timeout MS]
       gamemesh drain ID [--addr host:port] [--token T | --tokenfile F] [--timeout MS]

status: every registered service: version, state (running, retiring...),
what holds it (clients), memory; from its admin port (GET /status) when it
has one, else from its registration.
drain: the node stops taking new work and exits once its last client is
gone (POST /drain on its admin port, else a drain request in the KV).
`;

const OPTIONS = {
  addr: { type: 'string', default: process.env['GAMEMESH_SDADDR'] ?? '127.0.0.1:8900' },
  token: { type: 'string' },
  tokenfile: { type: 'string' },
  timeout: { type: 'string', default: '3000' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

interface Row {
  id: string;
  name: string;
  version: number;
  state: string;
  holding: number | undefined;
  rssMiB: number | undefined;
  admin: string;
  /** Why the admin port did not answer, when it did not. */
  error?: string;
}

export function status(argv: string[]): Promise<number> {
  return run('gamemesh status', argv, 0, async ({ client, token, timeoutMs, json }) => {
    const services = await client.listServices();
    const rows = await Promise.all(services.map((d) => rowOf(d, token, timeoutMs)));
    if (json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    if (rows.length === 0) process.stderr.write('no services registered\n');
    const table = [['ID', 'VERSION', 'STATE', 'HOLDING', 'RSS', 'ADMIN'], ...rows.map((r) => [r.id, String(r.version), r.state, r.holding === undefined ? '-' : String(r.holding), r.rssMiB === undefined ? '-' : `${r.rssMiB} MiB`, r.admin || '(none)'])];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)));
    for (const row of table) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()}\n`);
    for (const r of rows) if (r.error) process.stderr.write(`${r.id}: admin port ${r.admin}: ${r.error}\n`);
    return rows.some((r) => r.error) ? 1 : 0;
  });
}

export function drain(argv: string[]): Promise<number> {
  return run('gamemesh drain', argv, 1, async ({ client, token, timeoutMs, args }) => {
    const id = args[0] as string;
    const desc = (await client.listServices()).find((d) => d.id === id);
    if (!desc) {
      process.stderr.write(`gamemesh drain: no service ${id} is registered (gamemesh status lists them)\n`);
      return 1;
    }
    const admin = desc.meta['admin'];
    if (admin) {
      const res = await adminPost(admin, '/drain', token, timeoutMs);
      if (res.status === 200 || res.status === 202) {
        process.stdout.write(`${id}: ${res.status === 202 ? 'retiring' : 'was retiring already'}; it exits once its last client is gone\n`);
        return 0;
      }
      process.stderr.write(`gamemesh drain: ${id}'s admin port ${admin} answered ${res.status}: ${res.text}\n`);
      return 1;
    }
    await updateNodeState(client, id, { drain: true });
    process.stdout.write(`${id}: drain requested in config/nodes/${id} (it has no admin port); it exits once its last client is gone\n`);
    return 0;
  });
}

interface Ctx {
  client: DiscoveryConnection;
  token: string | undefined;
  timeoutMs: number;
  json: boolean;
  args: string[];
}

async function run(program: string, argv: string[], arity: number, body: (ctx: Ctx) => Promise<number>): Promise<number> {
  let client: DiscoveryConnection | undefined;
  try {
    const { values, positionals } = parse(argv, OPTIONS);
    if (values['help']) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== arity) throw new UsageError(arity === 0 ? `no arguments expected, got ${positionals.join(' ')}` : `one service id expected (gamemesh status lists them), got ${positionals.length}`);
    const timeoutMs = intOption(values['timeout'], 'timeout', 3000);
    const tokenFile = (values['tokenfile'] as string | undefined) ?? process.env['GAMEMESH_TOKEN_FILE'];
    const given = (values['token'] as string | undefined) ?? process.env['GAMEMESH_TOKEN'] ?? (tokenFile ? readTokenFile(tokenFile) : undefined);
    const options: ConnectDiscoveryOptions = { token: given, name: 'gamemesh-cli', failFast: true, connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs };
    const connected = await connectWithToken(String(values['addr']), options, program);
    client = connected.client;
    return await body({ client, token: connected.token, timeoutMs, json: values['json'] === true, args: positionals });
  } catch (err) {
    process.stderr.write(`${program}: ${(err as Error).message}\n${err instanceof UsageError ? HELP : ''}`);
    return 2;
  } finally {
    await client?.close();
  }
}

async function rowOf(d: ServiceDesc, token: string | undefined, timeoutMs: number): Promise<Row> {
  const row: Row = { id: d.id, name: d.name, version: Number(d.meta['version'] ?? 1), state: d.meta['state'] ?? 'running', holding: undefined, rssMiB: undefined, admin: d.meta['admin'] ?? '' };
  if (!row.admin) return row;
  try {
    const res = await fetch(`http://${row.admin}/status`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (res.status !== 200) return { ...row, error: `${res.status} ${text.slice(0, 200)}` };
    const s = JSON.parse(text) as { state?: string; version?: number; holding?: number; memory?: { rss?: number } };
    return { ...row, state: s.state ?? row.state, version: s.version ?? row.version, holding: s.holding, rssMiB: s.memory?.rss === undefined ? undefined : Math.round(s.memory.rss / 1048576) };
  } catch (err) {
    return { ...row, error: (err as Error).message };
  }
}

async function adminPost(admin: string, route: string, token: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://${admin}${route}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}
