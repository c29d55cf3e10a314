/** `gamemesh client --proto DIR --send pkg.Req`: one request of a project's own, from the terminal (see probe.ts). */
import { parseArgs } from 'node:util';
import { LoginError } from '../client/login.js';
import { UsageError } from './args.js';
import { connectPlayer, jsonBody, loadProtoDir, requestPair, toJson } from './probe.js';

const HELP = `usage: gamemesh client --login URL --user NAME --proto DIR --send PKG.MSG [--json '{...}']
                       [--expect PKG.MSG] [--listen SECONDS] [--password P] [--tcp]

Logs in, connects to the gateway login picked, sends one request of your
project's messages (read from the .proto files under DIR), and prints the
answer as a JSON line; with --listen, prints the pushes that come in the
seconds after it, one JSON line each ({"push": "pkg.Msg", ...}).

  --send PKG.MSG    the request, e.g. game.HelloReq
  --json TEXT       its fields as JSON (default {})
  --expect PKG.MSG  the answer's type (default: the name with Req turned into Resp)
  --password P      default: $GAMEMESH_PASSWORD, else "password"
  --tcp             over TCP instead of WebSocket
Exit code: 0 answered, 1 refused or failed, 2 usage.
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        login: { type: 'string' },
        user: { type: 'string' },
        password: { type: 'string' },
        proto: { type: 'string' },
        send: { type: 'string' },
        json: { type: 'string' },
        expect: { type: 'string' },
        listen: { type: 'string', default: '0' },
        tcp: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`gamemesh client: ${(err as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let setup;
  try {
    for (const need of ['login', 'user', 'proto', 'send'] as const) if (!values[need]) throw new UsageError(`--${need} is required`);
    const listenSec = Number(values.listen);
    if (!(listenSec >= 0 && listenSec <= 3600)) throw new UsageError(`--listen wants seconds (0..3600), got ${values.listen}`);
    const reg = loadProtoDir(values.proto as string);
    setup = { reg, pair: requestPair(reg, values.send as string, values.expect), body: jsonBody(values.json), listenSec };
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof Error && err.name === 'RegistryError')) throw err;
    process.stderr.write(`gamemesh client: ${err.message}\n`);
    return 2;
  }
  const [req, res] = setup.pair;
  const password = values.password ?? process.env['GAMEMESH_PASSWORD'] ?? 'password';
  let player;
  try {
    player = await connectPlayer(values.login as string, values.user as string, password, values.tcp ? 'tcp' : 'ws');
  } catch (err) {
    process.stderr.write(`gamemesh client: ${err instanceof LoginError ? `login failed${err.status ? ` (${err.status})` : ''}: ` : ''}${(err as Error).message}\n`);
    return 1;
  }
  const { client } = player;
  // Every push the project declares is printed, whatever its type.
  const offs = setup.listenSec > 0 ? [...setup.reg.types].map((type) => client.on(type, (msg) => process.stdout.write(`${toJson({ push: type.name, ...(msg as object) })}\n`))) : [];
  try {
    const answer = await client.request(req, res, setup.body);
    process.stdout.write(`${toJson(answer)}\n`);
    if (setup.listenSec > 0) await new Promise((resolve) => setTimeout(resolve, setup.listenSec * 1000));
    return 0;
  } catch (err) {
    process.stderr.write(`gamemesh client: ${req.name} failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    for (const off of offs) off();
    client.close();
  }
}
