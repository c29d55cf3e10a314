/**
 * The pomelo message layer (pomelo-protocol's Message), the body of a DATA
 * package:
 *
 *   flag   u8: bit 0 = route compressed, bits 1-3 = type, bit 4 = gzip
 *   id     base-128 varint, least significant group first (request, response)
 *   route  request, notify, push: u16 BE dictionary code when compressed,
 *          else u8 length + UTF-8 string
 *   body   the rest
 */
import { MAX_PACKAGE_BODY, PACKAGE_HEAD_BYTES, PackageType, PomeloProtocolError } from './package.js';

export const MessageKind = {
  REQUEST: 0,
  NOTIFY: 1,
  RESPONSE: 2,
  PUSH: 3,
} as const;

export type MessageKindValue = (typeof MessageKind)[keyof typeof MessageKind];

export const MAX_ROUTE_BYTES = 255;
export const MAX_ROUTE_CODE = 0xffff;
/** Request ids become gamemesh seq numbers, which are u32. */
export const MAX_REQUEST_ID = 0xffffffff;

const COMPRESS_ROUTE = 0x01;
const GZIP = 0x10;

/** A request or notify from a client. */
export interface ClientMessage {
  readonly kind: typeof MessageKind.REQUEST | typeof MessageKind.NOTIFY;
  /** 0 for a notify. */
  readonly id: number;
  /** The route string, or its dictionary code when `compressed`. */
  readonly route: string | number;
  readonly body: Buffer;
}

/**
 * Decodes what a client may send: a request (id >= 1) or a notify. Anything
 * else (a response or push from a client, gzip, reserved flag bits, an id
 * over 2^32-1, a truncated route) throws PomeloProtocolError.
 */
export function decodeClientMessage(buf: Buffer): ClientMessage {
  if (buf.length < 1) throw new PomeloProtocolError('empty data package');
  const flag = buf[0] as number;
  if ((flag & GZIP) !== 0) throw new PomeloProtocolError('gzip-compressed message bodies are not supported');
  if ((flag & 0xe0) !== 0) throw new PomeloProtocolError(`reserved message flag bits set (0x${flag.toString(16)})`);
  const kind = (flag >> 1) & 0x07;
  if (kind !== MessageKind.REQUEST && kind !== MessageKind.NOTIFY) throw new PomeloProtocolError(`a client may send requests and notifies, not message type ${kind}`);
  let pos = 1;
  let id = 0;
  if (kind === MessageKind.REQUEST) {
    let scale = 1;
    for (let i = 0; ; i++) {
      if (pos >= buf.length) throw new PomeloProtocolError('truncated message id');
      if (i === 5) throw new PomeloProtocolError('message id longer than 5 bytes');
      const b = buf[pos++] as number;
      id += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) break;
    }
    if (id < 1 || id > MAX_REQUEST_ID) throw new PomeloProtocolError(`request id ${id} is outside 1..${MAX_REQUEST_ID}`);
  }
  let route: string | number;
  if ((flag & COMPRESS_ROUTE) !== 0) {
    if (pos + 2 > buf.length) throw new PomeloProtocolError('truncated route code');
    route = buf.readUInt16BE(pos);
    pos += 2;
  } else {
    if (pos >= buf.length) throw new PomeloProtocolError('truncated route');
    const len = buf[pos++] as number;
    if (pos + len > buf.length) throw new PomeloProtocolError('truncated route');
    route = buf.toString('utf8', pos, pos + len);
    pos += len;
  }
  return { kind, id, route, body: buf.subarray(pos) };
}

function varintBytes(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function bodyLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.length;
}

/** A DATA package head and `messageBytes` of room after it, in one allocation. */
function dataPackage(messageBytes: number): Buffer {
  if (messageBytes > MAX_PACKAGE_BODY) throw new RangeError(`a pomelo message is at most ${MAX_PACKAGE_BODY} bytes, got ${messageBytes}`);
  const out = Buffer.allocUnsafe(PACKAGE_HEAD_BYTES + messageBytes);
  out[0] = PackageType.DATA;
  out.writeUIntBE(messageBytes, 1, 3);
  return out;
}

function putBody(out: Buffer, pos: number, body: string | Uint8Array): void {
  if (typeof body === 'string') out.write(body, pos, 'utf8');
  else out.set(body, pos);
}

/** A DATA package holding the response to request `id` (a string body is written as UTF-8). */
export function responsePackage(id: number, body: string | Uint8Array): Buffer {
  const len = bodyLength(body);
  const out = dataPackage(1 + varintBytes(id) + len);
  let pos = PACKAGE_HEAD_BYTES;
  out[pos++] = MessageKind.RESPONSE << 1;
  let n = id;
  while (n >= 128) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  putBody(out, pos, body);
  return out;
}

/** A DATA package holding a push, with a route string or a dictionary code (a number). */
export function pushPackage(route: string | number, body: string | Uint8Array): Buffer {
  const len = bodyLength(body);
  if (typeof route === 'number') {
    if (!Number.isInteger(route) || route < 0 || route > MAX_ROUTE_CODE) throw new RangeError(`route code ${route} is outside 0..${MAX_ROUTE_CODE}`);
    const out = dataPackage(3 + len);
    out[PACKAGE_HEAD_BYTES] = (MessageKind.PUSH << 1) | COMPRESS_ROUTE;
    out.writeUInt16BE(route, PACKAGE_HEAD_BYTES + 1);
    putBody(out, PACKAGE_HEAD_BYTES + 3, body);
    return out;
  }
  const routeLen = Buffer.byteLength(route);
  if (routeLen > MAX_ROUTE_BYTES) throw new RangeError(`route "${route.slice(0, 40)}..." is over ${MAX_ROUTE_BYTES} bytes`);
  const out = dataPackage(2 + routeLen + len);
  out[PACKAGE_HEAD_BYTES] = MessageKind.PUSH << 1;
  out[PACKAGE_HEAD_BYTES + 1] = routeLen;
  out.write(route, PACKAGE_HEAD_BYTES + 2, 'utf8');
  putBody(out, PACKAGE_HEAD_BYTES + 2 + routeLen, body);
  return out;
}
