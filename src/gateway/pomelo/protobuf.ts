/**
 * Compact bodies for clients that use pomelo-protobuf. The handshake may
 * offer `protos.client`: per request route, the message in pomelo-protobuf's
 * parsed form ({field: {option, type, tag}, __messages, __tags}), and such
 * clients then encode those requests with it. The agent decodes them here,
 * into the same JSON-like value a JSON client would have sent, which the
 * JSON path then checks and encodes; so both kinds of client meet the same
 * rules.
 *
 * pomelo-protobuf is not standard protobuf: it has only uInt32 (varint),
 * sInt32 and int32 (both zigzag), float, double, string and messages, and it
 * writes repeated numbers as a tag with the element's wire type, a varint
 * count, then the values. Messages with a field it cannot carry (bytes,
 * maps) are not offered: their routes stay JSON.
 */
import protobuf from 'protobufjs';
import { BodyError, MAX_DEPTH } from './json.js';

type PomeloType = 'uInt32' | 'sInt32' | 'float' | 'double' | 'string';

const POMELO_TYPE: Readonly<Record<string, PomeloType>> = {
  uint32: 'uInt32',
  fixed32: 'uInt32',
  uint64: 'uInt32',
  fixed64: 'uInt32',
  bool: 'uInt32',
  int32: 'sInt32',
  sint32: 'sInt32',
  sfixed32: 'sInt32',
  int64: 'sInt32',
  sint64: 'sInt32',
  sfixed64: 'sInt32',
  float: 'float',
  double: 'double',
  string: 'string',
};

const WIRE: Readonly<Record<PomeloType, number>> = { uInt32: 0, sInt32: 0, float: 5, double: 1, string: 2 };

/** One field in pomelo-protobuf's parsed form. */
export interface PomeloField {
  readonly option: 'optional' | 'repeated';
  readonly type: string;
  readonly tag: number;
}

/** A message in pomelo-protobuf's parsed form. */
export type PomeloProto = { [field: string]: PomeloField | Record<string, unknown> } & {
  __messages: Record<string, never>;
  __tags: Record<number, string>;
};

/** The name a message type gets in the protos: its full name with the leading dot, which no scalar type has. */
function protoKey(type: protobuf.Type): string {
  return type.fullName;
}

/**
 * Adds `type` (and every message it uses, as global "message <name>"
 * entries) to `out`; false if some field cannot be carried.
 */
export function addPomeloProto(type: protobuf.Type, out: Record<string, PomeloProto>, key: string, seen = new Set<protobuf.Type>()): boolean {
  const proto = { __messages: {}, __tags: {} } as PomeloProto;
  for (const f of type.fieldsArray) {
    f.resolve();
    if (f instanceof protobuf.MapField || f.map) return false;
    const resolved = f.resolvedType;
    let ptype: string;
    if (resolved instanceof protobuf.Type) {
      ptype = protoKey(resolved);
      if (!seen.has(resolved)) {
        seen.add(resolved);
        if (!addPomeloProto(resolved, out, `message ${ptype}`, seen)) return false;
      }
    } else if (resolved instanceof protobuf.Enum) {
      ptype = 'sInt32';
    } else {
      const t = POMELO_TYPE[f.type];
      if (!t) return false;
      ptype = t;
    }
    (proto as Record<string, unknown>)[f.name] = { option: f.repeated ? 'repeated' : 'optional', type: ptype, tag: f.id } satisfies PomeloField;
    proto.__tags[f.id] = f.name;
  }
  out[key] = proto;
  return true;
}

/** Reads a pomelo-protobuf body into the JSON-like value a JSON client would send for `type`. */
export function decodePomeloProtobuf(type: protobuf.Type, body: Uint8Array): Record<string, unknown> {
  const reader = new Reader(body);
  return readMessage(type, reader, body.length, 0, type.fullName.slice(1));
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  /** A varint of up to 8 bytes (pomelo's encoders write numbers up to 2^53 this way). */
  varint(end: number, where: string): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= end) throw new BodyError(`${where}: truncated varint`);
      const b = this.buf[this.pos++] as number;
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(n)) throw new BodyError(`${where}: varint over 2^53`);
        return n;
      }
      scale *= 128;
    }
    throw new BodyError(`${where}: varint longer than 8 bytes`);
  }

  take(len: number, end: number, where: string): Uint8Array {
    if (len > end - this.pos) throw new BodyError(`${where}: ${len} bytes declared, ${end - this.pos} left`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}

const utf8 = new TextDecoder();

function readMessage(type: protobuf.Type, r: Reader, end: number, depth: number, path: string): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new BodyError(`${path}: nested deeper than ${MAX_DEPTH} levels`);
  const out: Record<string, unknown> = {};
  while (r.pos < end) {
    const head = r.varint(end, path);
    const tag = Math.floor(head / 8);
    const wire = head % 8;
    const field = type.fieldsById[tag];
    if (!field) throw new BodyError(`${path}: unknown field tag ${tag}`);
    const where = path ? `${path}.${field.name}` : field.name;
    const resolved = field.resolvedType;
    const ptype: PomeloType | 'message' = resolved instanceof protobuf.Type ? 'message' : resolved instanceof protobuf.Enum ? 'sInt32' : (POMELO_TYPE[field.type] ?? 'message');
    const expected = ptype === 'message' ? 2 : WIRE[ptype];
    if (wire !== expected) throw new BodyError(`${where}: wire type ${wire}, expected ${expected}`);
    const value = (): unknown => {
      if (ptype === 'message') {
        if (!(resolved instanceof protobuf.Type)) throw new BodyError(`${where}: ${field.type} cannot be carried by pomelo-protobuf`);
        const len = r.varint(end, where);
        if (len > end - r.pos) throw new BodyError(`${where}: ${len} bytes declared, ${end - r.pos} left`);
        const stop = r.pos + len;
        const msg = readMessage(resolved, r, stop, depth + 1, where);
        r.pos = stop;
        return msg;
      }
      return readScalar(ptype, field.type, r, end, where);
    };
    if (!field.repeated) {
      out[field.name] = value();
    } else {
      const list = (out[field.name] ??= []) as unknown[];
      if (ptype === 'message' || ptype === 'string') {
        list.push(value());
      } else {
        const count = r.varint(end, where);
        // Every element takes at least one byte: a count over what is left is a lie.
        if (count > end - r.pos) throw new BodyError(`${where}: ${count} elements declared, ${end - r.pos} bytes left`);
        for (let i = 0; i < count; i++) list.push(value());
      }
    }
  }
  return out;
}

function readScalar(ptype: PomeloType, protoType: string, r: Reader, end: number, where: string): unknown {
  switch (ptype) {
    case 'uInt32': {
      const n = r.varint(end, where);
      return protoType === 'bool' ? n === 1 ? true : n === 0 ? false : badBool(n, where) : n;
    }
    case 'sInt32': {
      const n = r.varint(end, where);
      // zigzag: 0, -1, 1, -2, ... (as pomelo-protobuf's encodeSInt32 writes it)
      return n % 2 === 1 ? -(n + 1) / 2 : n / 2;
    }
    case 'float': {
      const b = r.take(4, end, where);
      return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
    }
    case 'double': {
      const b = r.take(8, end, where);
      return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
    }
    case 'string': {
      const len = r.varint(end, where);
      return utf8.decode(r.take(len, end, where));
    }
  }
}

function badBool(n: number, where: string): never {
  throw new BodyError(`${where} must be 0 or 1 (a bool), got ${n}`);
}
