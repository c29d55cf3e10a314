// The page: log in (POST /api/login), connect to the gateway login picked,
// say hello, join the lobby room, and show who comes and goes.
import { GameClient, login, wsTransport } from 'gamemesh/client';
import { HelloReq, HelloResp, LobbyChanged } from '../src/gen/index.js';

const form = document.getElementById('login') as HTMLFormElement;
const account = document.getElementById('account') as HTMLInputElement;
const players = document.getElementById('players') as HTMLElement;
const log = document.getElementById('log') as HTMLOListElement;

function say(text: string): void {
  const li = document.createElement('li');
  li.textContent = text;
  log.append(li);
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
  await client.connect();
  say(`you are ${(await client.request(HelloReq, HelloResp, {})).name}`);
  const room = await client.joinOrCreate('lobby', {}, { service: 'game' });
  room.onMessage(LobbyChanged, (change) => {
    players.textContent = change.players.join(', ');
    if (change.joined) say(`${change.joined} joined`);
    if (change.left) say(`${change.left} left`);
  });
  form.hidden = true;
}
