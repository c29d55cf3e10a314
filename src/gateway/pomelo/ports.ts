import type { IncomingMessage } from 'node:http';
import type { Session, SessionOptions } from '../../net/session.js';
import { listenTcp, type TcpListener } from '../../net/tcp.js';
import { listenWs, type WsListener } from '../../net/ws.js';
import type { RouteTable } from '../routes.js';
import type { PomeloPortState } from './session.js';
import { PomeloTable } from './table.js';
import { PomeloTcpSession, PomeloWsSession } from './transports.js';

export interface PomeloPortOptions {
  readonly host: string;
  /** 0 lets the OS pick; null (or undefined) leaves the transport off. */
  readonly wsPort?: number | null;
  readonly tcpPort?: number | null;
  /** Offer pomelo-protobuf protos in the handshake. */
  readonly protobuf?: boolean;
  /** The agent's client session options (size limit, outbound cap, handshake deadline). */
  readonly session: SessionOptions;
}

/**
 * The agent's pomelo ports: a WebSocket listener (pomelo's "ws" connector,
 * which the browser client uses) and a raw TCP listener (the "hybrid"
 * connector's socket). Each client becomes a PomeloSession that the agent
 * accepts like any other session.
 */
export class PomeloPorts implements PomeloPortState {
  table: PomeloTable;
  readonly protobuf: boolean;
  private ws: WsListener<PomeloWsSession> | undefined;
  private tcp: TcpListener<PomeloTcpSession> | undefined;

  private constructor(routes: RouteTable, protobuf: boolean) {
    this.table = new PomeloTable(routes);
    this.protobuf = protobuf;
  }

  /** Listens on the ports that are on; undefined when both are off. */
  static async start(options: PomeloPortOptions, routes: RouteTable, accept: (s: Session, req?: IncomingMessage) => void): Promise<PomeloPorts | undefined> {
    const on = (p: number | null | undefined): p is number => p !== null && p !== undefined;
    if (!on(options.wsPort) && !on(options.tcpPort)) return undefined;
    const ports = new PomeloPorts(routes, options.protobuf ?? false);
    const listen = { ...options.session, host: options.host };
    try {
      if (on(options.wsPort)) ports.ws = await listenWs<PomeloWsSession>({ ...listen, port: options.wsPort }, accept, (ws, remote, opts) => new PomeloWsSession(ws, remote, opts, ports));
      if (on(options.tcpPort)) ports.tcp = await listenTcp<PomeloTcpSession>({ ...listen, port: options.tcpPort }, accept, (socket, opts) => new PomeloTcpSession(socket, opts, ports));
    } catch (err) {
      await ports.close();
      throw err;
    }
    return ports;
  }

  /** From now on, new requests and handshakes follow this table. */
  setRoutes(routes: RouteTable): void {
    this.table = new PomeloTable(routes);
  }

  get wsAddress(): string | undefined {
    return this.ws ? `ws://${this.ws.host}:${this.ws.port}/` : undefined;
  }

  get tcpAddress(): string | undefined {
    return this.tcp ? `${this.tcp.host}:${this.tcp.port}` : undefined;
  }

  /** For the agent's registration: `pomelo_ws` and `pomelo_tcp`, with the WAN host if there is one. */
  meta(wan: string): Record<string, string> {
    return {
      ...(this.ws ? { pomelo_ws: `ws://${wan || this.ws.host}:${this.ws.port}/` } : {}),
      ...(this.tcp ? { pomelo_tcp: `${wan || this.tcp.host}:${this.tcp.port}` } : {}),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.ws?.close(), this.tcp?.close()]);
  }
}
