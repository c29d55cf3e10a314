// The page: log in (POST /api/login), connect to the gateway login picked,
// join the lobby, and show who comes and goes.
import { GameClient, login, wsTransport } from 'gamemesh/client';
import { JoinReq, JoinResp, LobbyChanged } from '../src/gen/index.js';

const form = document.getElementById('login') as HTMLFormElement;
const account = document.getElementById('account') as HTMLInputElement;
const playersEl = document.getElementById('players') as HTMLElement;
const log = document.getElementById('log') as HTMLOListElement;
const players = new Set<string>();

function say(text: string): void {
  const li = document.createElement('li');
  li.textContent = text;
  log.append(li);
}

function show(): void {
  playersEl.textContent = [...players].sort().join(', ') || '-';
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void join(account.value.trim()).catch((err: unknown) => say(`error: ${err instanceof Error ? err.message : String(err)}`));
});

async function join(name: string): Promise<void> {
  // Demo mode (cluster.json runs login with --demo): any name logs in, with any password.
  const answer = await login(location.origin, name, 'password');
  const ws = answer.agent.ws;
  if (!ws) throw new Error('login gave no WebSocket address');
  const client = new GameClient({ transport: () => wsTransport(ws), token: answer.token });
  client.on(LobbyChanged, (change) => {
    if (change.joined) players.add(change.name);
    else players.delete(change.name);
    say(`${change.name} ${change.joined ? 'joined' : 'left'}`);
    show();
  });
  await client.connect();
  const joined = await client.request(JoinReq, JoinResp, {});
  for (const p of joined.players) players.add(p);
  say(`you are ${joined.name}`);
  form.hidden = true;
  show();
}
