/**
 * `gamemesh client`: the demo in a terminal. Logs in, enters the game and
 * the chat, prints the chat as it comes, and turns typed lines into
 * requests (see commands.ts). Loaded by src/cli/client.ts.
 */
import { parseArgs } from 'node:util';
import { ClientError, type GameClient } from '../../src/client/index.js';
import { ChatMsg, ChatSendReq, ChatSendResp, EarnGoldReq, EarnGoldResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp, WhisperReq, WhisperResp, WhoReq, WhoResp } from '../gen/index.js';
import { login, LoginError, type LoginResult } from '../play/login.js';
import { enterWorld, playerClient, playerOf, type TransportKind } from '../play/player.js';
import { HELP_TEXT, parseCommand, type Command } from './commands.js';
import { Terminal } from './terminal.js';
import { backendLine, chatLine, earnedLine, errorLine, kickLine, levelLine, printable, statsLine, whoLine } from './view.js';

const DEFAULT_PASSWORD = 'demo-password';

const HELP = `usage: gamemesh client --login URL --user NAME [--password P] [--tcp | --kcp]

The demo game in a terminal: logs in, enters the game and the world chat.
Type to chat; commands:
${HELP_TEXT.replace(/^/gm, '  ')}

  --login URL     the login service, e.g. http://127.0.0.1:8080
  --user NAME     account (the demo login registers new names on first use)
  --password P    default: $GAMEMESH_PASSWORD, else "${DEFAULT_PASSWORD}"
  --tcp           connect to the agent over TCP instead of WebSocket
  --kcp           connect to the agent over KCP (UDP) instead of WebSocket
`;

interface Options {
  url: string;
  user: string;
  password: string;
  transport: TransportKind;
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`gamemesh client: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`logging in to ${opts.url} as ${opts.user}…`);
  let account: LoginResult;
  try {
    account = await login(opts.url, opts.user, opts.password);
  } catch (err) {
    say(`! login failed: ${err instanceof LoginError && err.status ? `${err.status} ` : ''}${(err as Error).message}`);
    return 1;
  }
  const { url, user, password } = opts;
  return play(account, opts.transport, () => login(url, user, password));
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { login: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' }, tcp: { type: 'boolean' }, kcp: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return 'help';
  if (!values.login) throw new Error('--login URL is required (e.g. http://127.0.0.1:8080)');
  if (!values.user) throw new Error('--user NAME is required');
  if (values.tcp && values.kcp) throw new Error('--tcp and --kcp exclude each other');
  return { url: values.login, user: values.user, password: values.password ?? process.env['GAMEMESH_PASSWORD'] ?? DEFAULT_PASSWORD, transport: values.tcp ? 'tcp' : values.kcp ? 'kcp' : 'ws' };
}

async function play(account: LoginResult, transport: TransportKind, relogin: () => Promise<LoginResult>): Promise<number> {
  const term = new Terminal();
  const me = account.account;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));
  let quitting = false;
  let client: GameClient;
  try {
    client = playerClient(account, transport, {
      relogin,
      onError: (err, where) => term.print(`! ${where}: ${(err as Error).message}`),
      onReentered: (e) => term.print(`* reconnected: back in the game (level ${e.player.level}, ${e.player.gold} gold), ${e.online} in chat`),
    });
  } catch (err) {
    term.print(`! ${(err as Error).message}`);
    term.close();
    return 1;
  }
  client.on(ChatMsg, (msg) => term.print(chatLine(msg, me)));
  client.onBackendStatus((status) => term.print(backendLine(status)));
  client.onKick((kick) => term.print(kickLine(kick)));
  client.onReconnecting((r) => term.print(`* connection lost (${r.reason}); reconnecting in ${(r.delayMs / 1000).toFixed(1)} s (attempt ${r.attempt})…`));
  client.onClose((info) => {
    if (quitting) return;
    term.print(`* disconnected: ${printable(info.reason)}`);
    finish(1);
  });

  try {
    await client.connect();
    const entered = await enterWorld(client, account.token);
    term.print(`welcome, ${me}: level ${entered.player.level}, ${entered.player.gold} gold. ${entered.online} in chat. Type to chat; /help lists the commands.`);
  } catch (err) {
    term.print(errorLine('entering the game', err));
    quitting = true;
    client.close();
    term.close();
    return 1;
  }

  // One command at a time, in the order typed: piped input arrives all at once.
  let queue = Promise.resolve();
  term.onLine((line) => {
    queue = queue.then(async () => {
      if (quitting) return;
      const cmd = parseCommand(line);
      if (cmd.kind === 'quit') {
        // At once, so lines typed after /quit are not sent.
        quitting = true;
        return finish(0);
      }
      await run(client, cmd, me, (l) => term.print(l));
      term.prompt();
    });
  });
  term.onEnd(() => void queue.then(() => finish(0)));
  term.prompt();

  const code = await finished;
  quitting = true;
  client.close();
  term.close();
  return code;
}

async function run(client: GameClient, cmd: Exclude<Command, { kind: 'quit' }>, me: string, print: (line: string) => void): Promise<void> {
  try {
    switch (cmd.kind) {
      case 'none':
        return;
      case 'bad':
        return print(`! ${cmd.message}`);
      case 'help':
        return HELP_TEXT.split('\n').forEach((l) => print(l));
      case 'say':
        // No local echo: the server's world message comes back to the sender too, in the order everyone sees.
        await client.request(ChatSendReq, ChatSendResp, { text: cmd.text });
        return;
      case 'whisper': {
        const r = await client.request(WhisperReq, WhisperResp, { to: cmd.to, text: cmd.text });
        return print(`[whisper to ${printable(cmd.to)}] ${printable(cmd.text)}${r.delivered ? '' : ` (${printable(cmd.to)} is not online on this chat server; passed on)`}`);
      }
      case 'gold': {
        const r = await client.request(EarnGoldReq, EarnGoldResp, {});
        return print(earnedLine(playerOf(r.player, me), r.earned));
      }
      case 'level': {
        const r = await client.request(LevelUpReq, LevelUpResp, {});
        return print(levelLine(playerOf(r.player, me), r.cost));
      }
      case 'stats': {
        const r = await client.request(StatsReq, StatsResp, {});
        return print(statsLine(playerOf(r.player, me)));
      }
      case 'who': {
        const r = await client.request(WhoReq, WhoResp, {});
        return print(whoLine(r.names));
      }
    }
  } catch (err) {
    if (cmd.kind === 'level' && err instanceof ClientError && err.code === 'application') return print(`! not enough gold: ${printable(err.message)} (/gold earns more)`);
    print(errorLine(describe(cmd.kind), err));
  }
}

function describe(kind: Command['kind']): string {
  return { say: 'chat', whisper: 'whisper', gold: 'earning gold', level: 'level up', stats: 'stats', who: 'who', help: 'help', quit: 'quit', none: '', bad: '' }[kind];
}
