/**
 * The client side of a KCP session: a connected UDP socket, the cookie
 * handshake (Hello, Challenge, Connect, Accept; each step resent until it
 * is answered), then a KcpSession on the conv the agent assigned.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { SessionOptions } from '../session.js';
import { CloseCode, ControlType, decodeControl, encodeControl, isControl, ModeByte } from './control.js';
import { KcpDriver } from './driver.js';
import { NORMAL_MODE, TURBO_MODE } from './engine.js';
import { KcpSession, type KcpLink, type KcpTuning } from './session.js';

/** KCP presets: normal (TCP-like) or turbo (low latency, more bandwidth). */
export type KcpModeName = 'normal' | 'turbo';

/** Options of dialKcp. */
export interface KcpDialOptions extends SessionOptions, KcpTuning {
  /** Both sides run this mode (the agent applies what Connect asks for). Default turbo. */
  mode?: KcpModeName;
  /** Give up on the handshake after this long (ms). Default 5000. */
  connectTimeoutMs?: number;
  /** Resend an unanswered Hello or Connect after this long (ms). Default 250. */
  retryMs?: number;
}

const CLOSE_REASONS: Record<number, string> = {
  [CloseCode.Full]: 'the agent is full',
  [CloseCode.Shutdown]: 'the agent is shutting down',
};

/** Connects to a KCP listener: the cookie handshake, then a session. */
export async function dialKcp(host: string, port: number, options: KcpDialOptions = {}): Promise<KcpSession> {
  const address = net.isIP(host) ? host : (await lookup(host)).address;
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const accept = await handshake(socket, options);
    return attach(socket, accept.conv, address, port, options);
  } catch (err) {
    socket.close();
    throw err;
  }
}

function handshake(socket: dgram.Socket, options: KcpDialOptions): Promise<{ conv: number }> {
  const nonce = randomBytes(4).readUInt32BE(0);
  const mode = options.mode === 'normal' ? ModeByte.Normal : ModeByte.Turbo;
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    let packet = encodeControl({ type: ControlType.Hello, nonce });
    const send = () => socket.send(packet, () => {});
    const retry = setInterval(send, options.retryMs ?? 250);
    const timer = setTimeout(() => done(new Error(`KCP handshake with ${socket.remoteAddress().address}:${socket.remoteAddress().port} timed out after ${timeoutMs} ms`)), timeoutMs);
    const done = (err: Error | undefined, conv?: number) => {
      clearInterval(retry);
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve({ conv: conv as number });
    };
    // A connected socket reports an ICMP port unreachable as an error: nobody listens there.
    const onError = (err: Error) => done(err);
    const onMessage = (msg: Buffer) => {
      const c = isControl(msg) ? decodeControl(msg) : undefined;
      if (c === undefined || typeof c === 'string') return;
      if (c.type === ControlType.Challenge && c.nonce === nonce) {
        packet = encodeControl({ type: ControlType.Connect, nonce, timestamp: c.timestamp, cookie: c.cookie, mode });
        send();
      } else if (c.type === ControlType.Accept && c.nonce === nonce && c.conv !== 0) {
        done(undefined, c.conv);
      } else if (c.type === ControlType.Close && c.conv === 0) {
        done(new Error(`the agent refused the KCP session: ${CLOSE_REASONS[c.code] ?? `code ${c.code}`}`));
      }
    };
    socket.on('message', onMessage);
    socket.on('error', onError);
    send();
  });
}

function attach(socket: dgram.Socket, conv: number, address: string, port: number, options: KcpDialOptions): KcpSession {
  let closed = false;
  const driver = new KcpDriver();
  const link: KcpLink = {
    driver,
    sendDatagram: (d) => {
      if (!closed) socket.send(d, () => {});
    },
    released: () => {
      closed = true;
      driver.stop();
      socket.close();
    },
  };
  const session = new KcpSession(link, conv, address, port, { ...options, mode: options.mode === 'normal' ? NORMAL_MODE : TURBO_MODE });
  socket.on('message', (msg: Buffer) => {
    if (isControl(msg)) {
      const c = decodeControl(msg);
      if (typeof c !== 'string' && c.type === ControlType.Close && c.conv === conv) session.peerClosed();
      return;
    }
    if (msg.length >= 4 && msg.readUInt32LE(0) === conv) session.input(msg);
  });
  socket.on('error', (err) => session.close(`socket error: ${err.message}`, err));
  return session;
}
