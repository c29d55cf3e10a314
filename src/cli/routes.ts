import { readFileSync } from 'node:fs';
import { connectDiscovery } from '../discovery/connect.js';
import { RouteTable, ROUTES_KEY } from '../gateway/routes.js';
import { parse, UsageError } from './args.js';

const KEY = `config/${ROUTES_KEY}`;

/**
 * `gamemesh routes push FILE` uploads a route table (routes.json from
 * `gamemesh gen`) to the KV, where agents watch it; `routes show` prints it.
 * This is cellmesh's MakeProto upload step.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parse(argv, {
      sdaddr: { type: 'string', default: process.env['GAMEMESH_SDADDR'] ?? '127.0.0.1:8900' },
      token: { type: 'string' },
    });
    const [verb, file] = positionals;
    if (verb !== 'push' && verb !== 'show') throw new UsageError('expected "routes push FILE" or "routes show"');
    if (verb === 'push' && !file) throw new UsageError('routes push needs the path of routes.json');
    // Check the file before touching the network: a bad table never reaches agents.
    const table = verb === 'push' ? RouteTable.parse(readText(file as string)) : undefined;
    const sd = await connectDiscovery(String(values['sdaddr']), { token: (values['token'] as string | undefined) ?? process.env['GAMEMESH_TOKEN'], name: 'gamemesh-routes', failFast: true, connectTimeoutMs: 3000, requestTimeoutMs: 3000 });
    try {
      if (table) {
        const rev = await sd.put(KEY, JSON.stringify(table.toJSON(), null, 1));
        process.stdout.write(`pushed ${table.size} route(s) to ${KEY} (revision ${rev})\n`);
      } else {
        const kv = await sd.get(KEY);
        if (!kv) {
          process.stderr.write(`gamemesh routes: no route table at ${KEY}\n`);
          return 1;
        }
        for (const r of RouteTable.parse(Buffer.from(kv.value).toString('utf8')).toJSON().routes) {
          process.stdout.write(`${r.msgId}\t${r.rule}\t${r.service}\t${r.name}\n`);
        }
      }
      return 0;
    } finally {
      await sd.close();
    }
  } catch (err) {
    process.stderr.write(`gamemesh routes: ${(err as Error).message}\n`);
    return 2;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
