/**
 * JSON bodies <-> protobuf messages, by the message's schema. Inbound is
 * strict, because the backend trusts what the agent forwards: an unknown
 * field, a value of the wrong type or out of its type's range, or nesting
 * deeper than MAX_DEPTH is a BodyError naming the field. Accepted values
 * follow the proto3 JSON mapping (64-bit integers as numbers or decimal
 * strings, bytes as base64, enums by name or number, null = unset).
 */
import protobuf from 'protobufjs';

export const MAX_DEPTH = 32;

/** A body the schema refuses; the message says which field and why. */
export class BodyError extends Error {
  override name = 'BodyError';
}

type Scalar = 'int32' | 'uint32' | 'int64' | 'uint64' | 'float' | 'bool' | 'string' | 'bytes';

const SCALAR_KIND: Readonly<Record<string, Scalar>> = {
  int32: 'int32',
  sint32: 'int32',
  sfixed32: 'int32',
  uint32: 'uint32',
  fixed32: 'uint32',
  int64: 'int64',
  sint64: 'int64',
  sfixed64: 'int64',
  uint64: 'uint64',
  fixed64: 'uint64',
  float: 'float',
  double: 'float',
  bool: 'bool',
  string: 'string',
  bytes: 'bytes',
};

interface FieldInfo {
  readonly name: string;
  readonly repeated: boolean;
  readonly map: boolean;
  /** Scalar kind of the value (map: of the value), unless enum or message. */
  readonly scalar: Scalar | undefined;
  readonly keyScalar: Scalar | undefined;
  readonly enumType: protobuf.Enum | undefined;
  readonly messageType: protobuf.Type | undefined;
  readonly oneof: string | undefined;
}

const infoCache = new WeakMap<protobuf.Type, ReadonlyMap<string, FieldInfo>>();

function fieldsOf(type: protobuf.Type): ReadonlyMap<string, FieldInfo> {
  let fields = infoCache.get(type);
  if (fields) return fields;
  const out = new Map<string, FieldInfo>();
  for (const f of type.fieldsArray) {
    f.resolve();
    const resolved = f.resolvedType;
    const isMap = f instanceof protobuf.MapField || f.map;
    out.set(f.name, {
      name: f.name,
      repeated: f.repeated,
      map: isMap,
      scalar: resolved ? undefined : SCALAR_KIND[f.type],
      keyScalar: isMap ? SCALAR_KIND[(f as protobuf.MapField).keyType] : undefined,
      enumType: resolved instanceof protobuf.Enum ? resolved : undefined,
      messageType: resolved instanceof protobuf.Type ? resolved : undefined,
      // proto3 `optional` is a synthetic oneof: not a choice between fields.
      oneof: f.partOf && f.partOf.oneof.length > 1 ? f.partOf.name : undefined,
    });
  }
  fields = out;
  infoCache.set(type, fields);
  return fields;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const INT64_TEXT = /^-?(0|[1-9]\d*)$/;
const BASE64 = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$/;

function scalarValue(kind: Scalar, v: unknown, where: string): unknown {
  switch (kind) {
    case 'int32':
      if (typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) return v;
      throw new BodyError(`${where} must be an integer in -2^31..2^31-1, got ${show(v)}`);
    case 'uint32':
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
      throw new BodyError(`${where} must be an integer in 0..2^32-1, got ${show(v)}`);
    case 'int64':
    case 'uint64': {
      const n = typeof v === 'string' && INT64_TEXT.test(v) ? Number(v) : v;
      if (typeof n === 'number' && Number.isSafeInteger(n) && (kind === 'int64' || n >= 0)) return n;
      throw new BodyError(`${where} must be ${kind === 'int64' ? 'an integer' : 'a non-negative integer'} within ±2^53, got ${show(v)}`);
    }
    case 'float':
      if (typeof v === 'number') return v;
      if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
      throw new BodyError(`${where} must be a number, got ${show(v)}`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw new BodyError(`${where} must be true or false, got ${show(v)}`);
    case 'string':
      if (typeof v === 'string') return v;
      throw new BodyError(`${where} must be a string, got ${show(v)}`);
    case 'bytes':
      if (typeof v === 'string' && BASE64.test(v)) return Buffer.from(v, 'base64');
      throw new BodyError(`${where} must be base64 text, got ${show(v)}`);
  }
}

function show(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}

function enumValue(e: protobuf.Enum, v: unknown, where: string): number {
  if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(e.values, v)) return e.values[v] as number;
  if (typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) return v;
  throw new BodyError(`${where} must be one of ${Object.keys(e.values).join(', ')} (or its number), got ${show(v)}`);
}

function mapKey(kind: Scalar, key: string, where: string): string {
  if (kind === 'string') return key;
  if (kind === 'bool') {
    if (key === 'true' || key === 'false') return key;
    throw new BodyError(`${where}: map key must be "true" or "false", got ${show(key)}`);
  }
  if (!INT64_TEXT.test(key)) throw new BodyError(`${where}: map key must be an integer, got ${show(key)}`);
  scalarValue(kind, kind === 'int64' || kind === 'uint64' ? key : Number(key), `${where} key`);
  return key;
}

function element(info: FieldInfo, v: unknown, where: string, depth: number): unknown {
  if (info.messageType) {
    if (!isPlainObject(v)) throw new BodyError(`${where} must be an object (${info.messageType.fullName.slice(1)}), got ${show(v)}`);
    return objectToMessage(info.messageType, v, where, depth + 1);
  }
  if (info.enumType) return enumValue(info.enumType, v, where);
  return scalarValue(info.scalar as Scalar, v, where);
}

function objectToMessage(type: protobuf.Type, obj: Record<string, unknown>, path: string, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new BodyError(`${path}: nested deeper than ${MAX_DEPTH} levels`);
  const fields = fieldsOf(type);
  const out: Record<string, unknown> = {};
  let oneofs: Map<string, string> | undefined;
  for (const key of Object.keys(obj)) {
    const info = fields.get(key);
    const where = path ? `${path}.${key}` : key;
    if (!info) throw new BodyError(`unknown field ${where} (${type.fullName.slice(1)} has ${[...fields.keys()].join(', ') || 'no fields'})`);
    const v = obj[key];
    if (v === null || v === undefined) continue;
    if (info.oneof) {
      const other = (oneofs ??= new Map()).get(info.oneof);
      if (other !== undefined) throw new BodyError(`${where} and ${other} are both set, but only one field of oneof ${info.oneof} may be`);
      oneofs.set(info.oneof, key);
    }
    if (info.map) {
      if (!isPlainObject(v)) throw new BodyError(`${where} must be an object (a map), got ${show(v)}`);
      // No prototype: a key such as "__proto__" stays an ordinary key.
      const m: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(v)) m[mapKey(info.keyScalar as Scalar, k, where)] = element(info, v[k], `${where}[${JSON.stringify(k)}]`, depth);
      out[key] = m;
    } else if (info.repeated) {
      if (!Array.isArray(v)) throw new BodyError(`${where} must be an array, got ${show(v)}`);
      out[key] = v.map((item, i) => element(info, item, `${where}[${i}]`, depth));
    } else {
      out[key] = element(info, v, where, depth);
    }
  }
  return out;
}

/** Checks a parsed JSON body against the schema and encodes it. Throws BodyError. */
export function encodeJsonBody(type: protobuf.Type, value: unknown): Uint8Array {
  if (!isPlainObject(value)) throw new BodyError(`the body must be a JSON object (${type.fullName.slice(1)}), got ${show(value)}`);
  return type.encode(objectToMessage(type, value, '', 0)).finish();
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: String, defaults: true, arrays: true, objects: true, json: true };

/** A protobuf body as the JSON text a pomelo client gets: every field present, enums by name, bytes as base64. */
export function protobufToJson(type: protobuf.Type, body: Uint8Array): string {
  return JSON.stringify(type.toObject(type.decode(body), TO_OBJECT));
}
