/**
 * Hand-driven UDP peers for the KCP guard and fuzz tests: a socket that
 * records what it receives and sends any bytes, the cookie handshake step
 * by step, and a raw-socket sender (test/fixtures/kcp/spoof.c, compiled at
 * test time) that forges the IPv4 source address of a datagram.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import path from 'node:path';
import { promisify } from 'node:util';
import { ControlType, decodeControl, encodeControl, ModeByte, type Control } from '../../src/net/kcp/control.js';
import type { Cleanup } from './proc.js';
import { ROOT, tempDir, waitFor } from './proc.js';

const run = promisify(execFile);

export interface Datagram {
  data: Buffer;
  address: string;
  port: number;
}

export class UdpPeer {
  readonly inbox: Datagram[] = [];

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (data, rinfo) => this.inbox.push({ data, address: rinfo.address, port: rinfo.port }));
    socket.on('error', () => {});
  }

  static async open(t: Cleanup, host = '127.0.0.1'): Promise<UdpPeer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
    const peer = new UdpPeer(socket);
    t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    return peer;
  }

  get address(): string {
    return this.socket.address().address;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The first control packet of `type` received (and not yet taken), within the deadline. */
  async take<T extends ControlType>(type: T, timeoutMs = 2000): Promise<Extract<Control, { type: T }>> {
    let found: Extract<Control, { type: T }> | undefined;
    await waitFor(
      () => {
        const i = this.inbox.findIndex((d) => {
          const c = decodeControl(d.data);
          return typeof c !== 'string' && c.type === type;
        });
        if (i < 0) return false;
        const [d] = this.inbox.splice(i, 1);
        found = decodeControl((d as Datagram).data) as Extract<Control, { type: T }>;
        return true;
      },
      timeoutMs,
      `a control packet of type ${type}`,
    );
    return found as Extract<Control, { type: T }>;
  }

  /** Hello, Challenge, Connect, Accept: the conv the listener on `port` assigned. */
  async handshake(port: number, mode: ModeByte = ModeByte.Turbo, nonce = 0x01020304): Promise<{ conv: number; cookie: Extract<Control, { type: ControlType.Challenge }> }> {
    await this.send(encodeControl({ type: ControlType.Hello, nonce }), port);
    const challenge = await this.take(ControlType.Challenge);
    await this.send(encodeControl({ type: ControlType.Connect, nonce, timestamp: challenge.timestamp, cookie: challenge.cookie, mode }), port);
    const accept = await this.take(ControlType.Accept);
    return { conv: accept.conv, cookie: challenge };
  }
}

/** The machine's C compiler (`$CC`, cc or gcc), or undefined. */
export async function findCompiler(): Promise<string | undefined> {
  for (const cc of [process.env['CC'], 'cc', 'gcc'].filter((c): c is string => !!c)) {
    try {
      await run(cc, ['--version']);
      return cc;
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * Compiles the raw-socket sender into a temp dir. Returns the reason instead
 * when that cannot work here: no C compiler, or no CAP_NET_RAW.
 */
export async function buildSpoofer(t: Cleanup): Promise<{ send: (src: string, srcPort: number, dstPort: number, payload: Buffer, count?: number) => Promise<void> } | string> {
  const cc = await findCompiler();
  if (!cc) return 'no C compiler (cc or gcc) to build the raw-socket sender; .ci/run installs gcc';
  const bin = path.join(tempDir(t, 'gamemesh-kcp-spoof-'), 'spoof');
  await run(cc, ['-O2', '-o', bin, path.join(ROOT, 'test', 'fixtures', 'kcp', 'spoof.c')]);
  const send = async (src: string, srcPort: number, dstPort: number, payload: Buffer, count = 1): Promise<void> => {
    await run(bin, [src, String(srcPort), '127.0.0.1', String(dstPort), payload.toString('hex'), String(count)]);
  };
  try {
    await send('127.0.0.1', 9, 9, Buffer.from('probe'));
  } catch (err) {
    return `cannot send through a raw socket (needs root or CAP_NET_RAW): ${(err as Error).message}`;
  }
  return { send };
}
