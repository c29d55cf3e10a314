import protobuf from 'protobufjs';
import { docLines, protoName, str, tsName } from './names.js';
import type { FileScope } from './scope.js';

// 64-bit integers are numbers: the runtime configures protobufjs without Long.
const SCALARS: Readonly<Record<string, 'number' | 'boolean' | 'string' | 'bytes'>> = {
  double: 'number',
  float: 'number',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  fixed32: 'number',
  sfixed32: 'number',
  int64: 'number',
  uint64: 'number',
  sint64: 'number',
  fixed64: 'number',
  sfixed64: 'number',
  bool: 'boolean',
  string: 'string',
  bytes: 'bytes',
};

/** Enums, message interfaces and MessageType values of one file, then its MsgId table. */
export function emitMessages(scope: FileScope): string[] {
  const out: string[] = [];
  for (const decl of scope.file.decls) {
    out.push(...(decl instanceof protobuf.Enum ? emitEnum(decl) : emitMessage(scope, decl)), '');
  }
  const wire = scope.file.decls
    .filter((d): d is protobuf.Type => d instanceof protobuf.Type && scope.ctx.ids.has(protoName(d)))
    .map((t) => ({ name: tsName(t), id: (scope.ctx.ids.get(protoName(t)) as { id: number }).id }))
    .sort((a, b) => a.id - b.id);
  out.push('/** The message ids of this file, as used in frame headers. */');
  if (wire.length === 0) out.push('export const MsgId = {} as const;');
  else out.push('export const MsgId = {', ...wire.map((w) => `  ${w.name}: ${w.id},`), '} as const;');
  return out;
}

function emitEnum(e: protobuf.Enum): string[] {
  const name = tsName(e);
  const entries = Object.entries(e.values);
  const values = [...new Set(entries.map(([, v]) => v))].sort((a, b) => a - b);
  return [
    ...docLines(e.comment),
    `export const ${name} = {`,
    ...entries.flatMap(([key, value]) => [...docLines(e.comments[key], '  '), `  ${key}: ${value},`]),
    '} as const;',
    `export type ${name} = ${values.join(' | ')};`,
  ];
}

function emitMessage(scope: FileScope, type: protobuf.Type): string[] {
  const name = tsName(type);
  const fields = type.fieldsArray.filter((f) => !f.name.startsWith('.')); // skip extension sisters
  const out = docLines(type.comment);
  if (fields.length === 0) {
    // `interface X {}` would accept anything (and lint rejects it); this accepts only {}.
    out.push(`export type ${name} = ${recordOf(scope, 'never')};`);
  } else {
    out.push(`export interface ${name} {`);
    for (const field of fields) {
      const { type: ts, optional } = fieldType(scope, type, field);
      out.push(...docLines(field.comment, '  '), `  ${field.name}${optional ? '?' : ''}: ${ts};`);
    }
    out.push('}');
  }
  const assigned = scope.ctx.ids.get(protoName(type));
  if (assigned) {
    const how = assigned.auto ? ' // automatic id: a hash of the full name' : '';
    out.push(`export const ${name}: ${scope.runtime('MessageType')}<${name}> = ${scope.shared('mt')}<${name}>(${str(protoName(type))}, ${assigned.id});${how}`);
  }
  return out;
}

/**
 * The TypeScript type of a field as protobufjs decodes it: unset messages
 * and presence-tracking scalars (proto3 `optional`, oneof members) are null.
 */
function fieldType(scope: FileScope, parent: protobuf.Type, field: protobuf.FieldBase): { type: string; optional: boolean } {
  const element = elementType(scope, parent, field);
  if (field instanceof protobuf.MapField || field.map) {
    return { type: recordOf(scope, element), optional: false };
  }
  if (field.repeated) return { type: `${element}[]`, optional: false };
  const presence = field.resolvedType instanceof protobuf.Type || (field instanceof protobuf.Field && field.hasPresence && !field.required);
  return presence ? { type: `${element} | null | undefined`, optional: true } : { type: element, optional: false };
}

function elementType(scope: FileScope, parent: protobuf.Type, field: protobuf.FieldBase): string {
  const resolved = field.resolvedType;
  if (resolved) return scope.ref(resolved, 'type', `field ${protoName(parent)}.${field.name}`);
  const scalar = SCALARS[field.type];
  if (!scalar) throw new Error(`internal: unknown scalar type ${field.type} of ${protoName(parent)}.${field.name}`);
  return scalar === 'bytes' ? scope.global('Uint8Array') : scalar;
}

/** Record<string, V>, spelled out when a declaration in the file is itself named Record. */
function recordOf(scope: FileScope, value: string): string {
  return scope.locals.has('Record') ? `{ [key: string]: ${value} }` : `Record<string, ${value}>`;
}
