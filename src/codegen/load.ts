import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import protobuf from 'protobufjs';
import { GAMEMESH_PROTO_DIR, MessageRegistry } from '../wire/registry.js';
import { CodegenError, displayPath } from './errors.js';

/** One .proto file under the proto directory and what it declares. */
export interface ProtoFile {
  /** Path relative to the proto directory, with forward slashes: "sub/b.proto". */
  readonly rel: string;
  readonly abs: string;
  /** Messages and enums in declaration order, nested ones right after their parent. */
  readonly decls: Array<protobuf.Type | protobuf.Enum>;
  readonly services: protobuf.Service[];
}

export interface LoadedProtos {
  readonly dir: string;
  readonly root: protobuf.Root;
  /** Sorted by rel. */
  readonly files: readonly ProtoFile[];
  /** The file under the proto directory that declares obj; undefined for imports from elsewhere. */
  fileOf(obj: protobuf.ReflectionObject): ProtoFile | undefined;
}

/**
 * Parses every .proto file under dir (recursively, skipping dot-directories
 * and node_modules). Imports resolve against dir, then gamemesh's own proto
 * directory, with MessageRegistry's lenient handling of options.proto.
 */
export function loadProtos(protoDir: string): LoadedProtos {
  const dir = resolve(protoDir);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new CodegenError(`proto directory not found: ${displayPath(dir)}`);
  }
  if (!isDir) throw new CodegenError(`not a directory: ${displayPath(dir)}`);
  const rels = findProtoFiles(dir, '');
  if (rels.length === 0) throw new CodegenError(`no .proto files under ${displayPath(dir)}`);

  const root = new MessageRegistry([dir, GAMEMESH_PROTO_DIR]).root;
  const byAbs = new Map<string, ProtoFile>();
  const files: ProtoFile[] = [];
  for (const rel of rels) {
    const file: ProtoFile = { rel, abs: join(dir, ...rel.split('/')), decls: [], services: [] };
    byAbs.set(file.abs, file);
    files.push(file);
  }
  // One file at a time, so an error names the file that caused it.
  for (const file of files) {
    try {
      root.loadSync(file.abs, { keepCase: true, alternateCommentMode: true });
    } catch (err) {
      throw new CodegenError(describeLoadError(err, file.abs, root));
    }
  }
  const fileOf = (obj: protobuf.ReflectionObject) => (obj.filename ? byAbs.get(obj.filename) : undefined);
  collect(root, fileOf);
  return { dir, root, files, fileOf };
}

function findProtoFiles(dir: string, prefix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!entry.name.startsWith('.') && entry.name !== 'node_modules') out.push(...findProtoFiles(dir, rel));
    } else if (entry.name.endsWith('.proto')) {
      out.push(rel);
    }
  }
  // Code-unit order, not locale order: the output must not depend on the machine.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function collect(ns: protobuf.NamespaceBase, fileOf: (obj: protobuf.ReflectionObject) => ProtoFile | undefined): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      fileOf(nested)?.decls.push(nested);
      collect(nested, fileOf);
    } else if (nested instanceof protobuf.Enum) {
      fileOf(nested)?.decls.push(nested);
    } else if (nested instanceof protobuf.Service) {
      fileOf(nested)?.services.push(nested);
    } else if (nested instanceof protobuf.Namespace) {
      collect(nested, fileOf);
    }
  }
}

/** protobufjs errors, reworded as "file:line: what" where it tells us enough. */
function describeLoadError(err: unknown, file: string, root: protobuf.Root): string {
  const e = err as NodeJS.ErrnoException;
  const message = String(e?.message ?? err).split('\n')[0] as string;
  const syntax = /^(.*) \((.+), line (\d+)\)$/.exec(message);
  if (syntax) return `${displayPath(syntax[2] as string)}:${syntax[3]}: ${syntax[1]}`;
  if (e?.code === 'ENOENT' && e.path) return `${displayPath(file)}: cannot read imported file ${displayPath(e.path)}`;
  // Resolution errors name the reflection object ("... in Type .demo.Foo"): report its file.
  const owner = /in \w+ (\.[\w.]+)/.exec(message)?.[1];
  let where = file;
  if (owner) {
    try {
      where = root.lookup(owner)?.filename ?? file;
    } catch {
      // keep the file being loaded
    }
  }
  return `${displayPath(where)}: ${message}`;
}
