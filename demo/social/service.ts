import { createHub, GatewayBackend, RpcError, ServiceNode, type ServiceConfig } from '../../src/index.js';
import { loadJwtKey } from '../../src/login/index.js';
import { ChatMsg, ChatSendReq, ChatSendResp, HubChat, JoinChatReq, JoinChatResp, WhisperReq, WhisperResp, WhoReq, WhoResp } from '../gen/index.js';
import { PlayerSessions } from '../shared/sessions.js';

export interface SocialOptions {
  config: Partial<ServiceConfig>;
  jwtSecret?: string;
}

const WORLD = 'chat.world';
const WHISPER = 'chat.whisper';
const MAX_TEXT = 200;

/**
 * The demo's social service: world chat and whispers. Chat goes through the
 * hub, so every social instance delivers to the players it holds, whichever
 * agent they are on; one instance or several, the code is the same.
 *
 * Who is in chat lives in memory only. When this process restarts, the
 * agents re-announce the clients bound to it and PlayerSessions rebuilds
 * the list, so players stay in chat without joining again.
 */
export async function startSocial(options: SocialOptions): Promise<{ node: ServiceNode; stop(): Promise<void> }> {
  const node = new ServiceNode({ name: 'social', config: options.config });
  const backend = new GatewayBackend(node);
  const hub = createHub(node);
  // The key is read from the KV once the node is up; a client that is faster waits for it.
  let resolveKey: (key: Uint8Array) => void = () => {};
  const jwtKey = new Promise<Uint8Array>((resolve) => (resolveKey = resolve));
  const players = new PlayerSessions(backend, hub, jwtKey, 'not in chat: send JoinChatReq first');
  const text = (t: string): string => {
    // C1 too (U+0080-U+009F): U+009B is a one-character CSI to terminals, such as the terminal client's.
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
    const clean = t.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim();
    if (clean.length === 0) throw new RpcError('bad_request', 'empty message');
    if (clean.length > MAX_TEXT) throw new RpcError('bad_request', `messages are limited to ${MAX_TEXT} characters`);
    return clean;
  };

  hub.subscribe(WORLD, HubChat, (msg) => {
    backend.sendMany(players.connections(), ChatMsg, { channel: 'world', from: msg.from, text: msg.text, time_ms: msg.time_ms });
  });
  hub.subscribe(WHISPER, HubChat, (msg) => {
    const target = players.find(msg.to);
    if (target) backend.send(target, ChatMsg, { channel: 'whisper', from: msg.from, text: msg.text, time_ms: msg.time_ms });
  });

  backend.handle(JoinChatReq, JoinChatResp, async (req, client) => {
    const name = await players.signIn(client, req.token);
    return { name, online: players.size };
  });

  backend.handle(ChatSendReq, ChatSendResp, (req, client) => {
    const from = players.uidOf(client);
    if (!hub.publish(WORLD, HubChat, { channel: 'world', from, text: text(req.text), time_ms: Date.now() })) throw new RpcError('unavailable', 'chat is unavailable right now');
    return {};
  });

  backend.handle(WhisperReq, WhisperResp, (req, client) => {
    const from = players.uidOf(client);
    const body = text(req.text);
    const target = players.find(req.to);
    if (target) {
      backend.send(target, ChatMsg, { channel: 'whisper', from, text: body, time_ms: Date.now() });
      return { delivered: true };
    }
    // Perhaps another social instance holds that player.
    hub.publish(WHISPER, HubChat, { channel: 'whisper', from, to: req.to, text: body, time_ms: Date.now() });
    return { delivered: false };
  });

  // Read-only: it need not wait behind the client's other messages.
  backend.handle(
    WhoReq,
    WhoResp,
    (_req, client) => {
      players.uidOf(client);
      return { names: players.names() };
    },
    { concurrent: true },
  );

  await node.start();
  resolveKey(await loadJwtKey(node.discovery, { secret: options.jwtSecret }));
  return { node, stop: () => node.stop() };
}
