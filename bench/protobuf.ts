/**
 * protobufjs vs @bufbuild/protobuf (v2): encode and decode ops/s of typical
 * game messages.
 *
 * protobufjs is used the way src/wire/registry.ts uses it: a Root parsed from
 * .proto text at runtime (keepCase), `Type.encode(obj).finish()` on plain
 * objects and `Type.decode(buf)`, with `protobuf.util.Long` disabled (the
 * registry module does that on import, and we import it).
 *
 * @bufbuild/protobuf has no runtime .proto parser and there is no protoc here,
 * so its descriptors are built at runtime from a hand-written
 * FileDescriptorProto (FileDescriptorProtoSchema + createFileRegistry); the
 * encode/decode path is the same as with generated code (create, toBinary,
 * fromBinary).
 */
import protobuf from 'protobufjs';
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage, type Message } from '@bufbuild/protobuf';
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
// Side effect: disables protobuf.util.Long exactly as the framework does.
import '../src/wire/registry.js';
import { DEFAULT_MS, fmtInt, fmtNum, fmtRatio, isMain, measure, printTable } from './lib.js';

const PROTO = `
syntax = "proto3";
package bench;

message Item {
  uint32 id = 1;
  uint32 count = 2;
}

message PlayerState {
  uint64 player_id = 1;
  string name = 2;
  int32 level = 3;
  int64 gold = 4;
  float x = 5;
  float y = 6;
  float z = 7;
  repeated Item items = 8;
  bool online = 9;
}

message Move {
  uint32 seq = 1;
  float x = 2;
  float y = 3;
}
`;

// ---- the sample messages (float values are exact in 32 bits) ----------------

const ITEMS = [
  { id: 1001, count: 1 },
  { id: 1002, count: 25 },
  { id: 2050, count: 3 },
  { id: 31000, count: 999 },
  { id: 7, count: 120 },
];

/** protobufjs shape: field names as in the .proto (keepCase), 64-bit as number. */
const PLAYER_PBJS = {
  player_id: 123_456_789_012,
  name: 'Aria the Brave',
  level: 42,
  gold: 9_876_543_210,
  x: 1024.5,
  y: -37.25,
  z: 12.125,
  items: ITEMS,
  online: true,
};
const MOVE_PBJS = { seq: 48_213, x: 1025.75, y: -36.5 };

/** @bufbuild/protobuf shape: camelCase names, 64-bit as bigint. */
const PLAYER_ES_INIT: Record<string, unknown> = {
  playerId: 123_456_789_012n,
  name: PLAYER_PBJS.name,
  level: PLAYER_PBJS.level,
  gold: 9_876_543_210n,
  x: PLAYER_PBJS.x,
  y: PLAYER_PBJS.y,
  z: PLAYER_PBJS.z,
  items: ITEMS,
  online: true,
};
const MOVE_ES_INIT: Record<string, unknown> = { ...MOVE_PBJS };

// ---- protobufjs setup --------------------------------------------------------

function protobufjsTypes(): { player: protobuf.Type; move: protobuf.Type } {
  if (protobuf.util.Long) throw new Error('expected protobuf.util.Long to be disabled by src/wire/registry.js');
  const root = protobuf.parse(PROTO, { keepCase: true }).root;
  root.resolveAll();
  return { player: root.lookupType('bench.PlayerState'), move: root.lookupType('bench.Move') };
}

// ---- @bufbuild/protobuf setup ------------------------------------------------

type FieldSpec = [name: string, number: number, type: FieldDescriptorProto_Type, repeated?: boolean, typeName?: string];

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function messageProto(name: string, fields: readonly FieldSpec[]): Record<string, unknown> {
  return {
    name,
    field: fields.map(([fieldName, number, type, repeated, typeName]) => ({
      name: fieldName,
      jsonName: camel(fieldName),
      number,
      type,
      label: repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
      ...(typeName ? { typeName } : {}),
    })),
  };
}

function bufbuildTypes(): { player: DescMessage; move: DescMessage } {
  const T = FieldDescriptorProto_Type;
  const file = create(FileDescriptorProtoSchema, {
    name: 'bench/game.proto',
    package: 'bench',
    syntax: 'proto3',
    messageType: [
      messageProto('Item', [
        ['id', 1, T.UINT32],
        ['count', 2, T.UINT32],
      ]),
      messageProto('PlayerState', [
        ['player_id', 1, T.UINT64],
        ['name', 2, T.STRING],
        ['level', 3, T.INT32],
        ['gold', 4, T.INT64],
        ['x', 5, T.FLOAT],
        ['y', 6, T.FLOAT],
        ['z', 7, T.FLOAT],
        ['items', 8, T.MESSAGE, true, '.bench.Item'],
        ['online', 9, T.BOOL],
      ]),
      messageProto('Move', [
        ['seq', 1, T.UINT32],
        ['x', 2, T.FLOAT],
        ['y', 3, T.FLOAT],
      ]),
    ],
  });
  const registry = createFileRegistry(file, () => undefined);
  const get = (name: string): DescMessage => {
    const desc = registry.getMessage(name);
    if (!desc) throw new Error(`@bufbuild/protobuf: no message ${name}`);
    return desc;
  };
  return { player: get('bench.PlayerState'), move: get('bench.Move') };
}

// ---- checks ------------------------------------------------------------------

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function field(msg: unknown, name: string): unknown {
  return (msg as Record<string, unknown>)[name];
}

/** Both libraries must agree on the bytes and read back what was written. */
function check(label: string, pbjsBytes: Uint8Array, esBytes: Uint8Array, pbjsDecoded: unknown, esDecoded: Message, expect: Record<string, unknown>): void {
  if (!sameBytes(pbjsBytes, esBytes)) {
    throw new Error(`${label}: protobufjs (${pbjsBytes.length} B) and @bufbuild/protobuf (${esBytes.length} B) encodings differ`);
  }
  for (const [key, want] of Object.entries(expect)) {
    if (typeof want === 'object') continue;
    const esKey = camel(key);
    const gotPbjs = field(pbjsDecoded, key);
    const gotEs = field(esDecoded, esKey);
    if (gotPbjs !== want || (typeof gotEs === 'bigint' ? Number(gotEs) : gotEs) !== want) {
      throw new Error(`${label}.${key}: expected ${String(want)}, protobufjs gave ${String(gotPbjs)}, @bufbuild/protobuf gave ${String(gotEs)}`);
    }
  }
}

// ---- the bench ---------------------------------------------------------------

export async function run(): Promise<void> {
  const pbjs = protobufjsTypes();
  const es = bufbuildTypes();

  const cases = [
    { name: 'PlayerState', pbType: pbjs.player, pbObj: PLAYER_PBJS, esDesc: es.player, esMsg: create(es.player, PLAYER_ES_INIT) },
    { name: 'Move', pbType: pbjs.move, pbObj: MOVE_PBJS, esDesc: es.move, esMsg: create(es.move, MOVE_ES_INIT) },
  ];

  const rows: string[][] = [];
  for (const c of cases) {
    const pbBytes = c.pbType.encode(c.pbObj).finish();
    const esBytes = toBinary(c.esDesc, c.esMsg);
    check(c.name, pbBytes, esBytes, c.pbType.decode(pbBytes), fromBinary(c.esDesc, esBytes), c.pbObj);
    const items = field(c.pbType.decode(pbBytes), 'items');
    if (Array.isArray(items) && items.length !== ITEMS.length) throw new Error(`${c.name}: items lost`);

    const pbType = c.pbType;
    const pbObj = c.pbObj;
    const esDesc = c.esDesc;
    const esMsg = c.esMsg;
    const pairs: [string, () => unknown, () => unknown][] = [
      ['encode', () => pbType.encode(pbObj).finish(), () => toBinary(esDesc, esMsg)],
      ['decode', () => pbType.decode(pbBytes), () => fromBinary(esDesc, esBytes)],
    ];
    for (const [op, pbFn, esFn] of pairs) {
      const label = `${c.name} ${op} (${pbBytes.length} B)`;
      const pbOps = measure(`protobufjs ${label}`, pbFn, DEFAULT_MS);
      const esOps = measure(`@bufbuild/protobuf ${label}`, esFn, DEFAULT_MS);
      rows.push([label, fmtInt(pbOps), fmtNum(1e9 / pbOps), fmtInt(esOps), fmtNum(1e9 / esOps), fmtRatio(pbOps / esOps)]);
    }
  }

  printTable(
    'protobuf: protobufjs vs @bufbuild/protobuf',
    ['case', 'protobufjs ops/s', 'protobufjs ns/op', 'protobuf-es ops/s', 'protobuf-es ns/op', 'ratio pbjs/es'],
    rows,
  );
}

if (isMain(import.meta.url)) {
  await run();
}
