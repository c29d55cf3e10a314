/**
 * `gamemesh gen`: typed TypeScript from .proto files. Per .proto file: an
 * interface and a MessageType value per wire message, enums, a MsgId table,
 * and for each service a handler interface plus typed RPC stubs. Shared:
 * _descriptor.ts (the JSON descriptor, so nothing is parsed at run time),
 * _runtime.ts, index.ts, and routes.json for the gateway.
 */
import { mkdirSync, type Dirent, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CodegenError, displayPath } from './errors.js';
import { collectRpcs, emitServices, type Rpc } from './emit-services.js';
import { emitMessages } from './emit-messages.js';
import { emitDescriptor, emitIndex, emitRuntime, exportsOf, header, HEADER_PREFIX, type FileExports } from './emit-shared.js';
import { assignIds } from './ids.js';
import { loadProtos, type ProtoFile } from './load.js';
import { outPathOf, protoName, tsName } from './names.js';
import { collectPomeloRoutes, pomeloSchema } from './pomelo.js';
import { collectRoutes, routeTable, type RouteTable } from './routes.js';
import { FileScope, SHARED_FILES, type GenContext } from './scope.js';

export { CodegenError } from './errors.js';
export { autoId } from './ids.js';
export type { Route, RouteRule, RouteTable } from './routes.js';

export interface GenerateOptions {
  protoDir: string;
  /**
   * The module generated code imports the runtime from (default "gamemesh").
   * A relative path is written as seen from the output directory; files in
   * its subdirectories get the extra "../" they need.
   */
  importFrom?: string;
}

export interface GeneratedFile {
  /** Relative to the output directory, with forward slashes. */
  readonly path: string;
  readonly content: string;
}

export interface GenerateResult {
  /** Sorted by path; includes routes.json. */
  readonly files: readonly GeneratedFile[];
  readonly routes: RouteTable;
  /** Messages that got an id (explicit or automatic). */
  readonly messages: number;
  readonly services: number;
}

const RESERVED_OUT = new Set(['index.ts', ...Object.values(SHARED_FILES)]);

/** Parses, validates and renders; touches no file. Throws CodegenError on bad input. */
export function generate(options: GenerateOptions): GenerateResult {
  const loaded = loadProtos(options.protoDir);
  const importFrom = options.importFrom ?? 'gamemesh';
  const routed = collectRoutes(loaded);
  const rpcs = collectRpcs(loaded);
  const pomeloNamed = collectPomeloRoutes(loaded);
  const wireUsed = new Set([...routed.keys(), ...pomeloNamed.keys(), ...rpcs.flatMap((r) => [protoName(r.req), protoName(r.res)])]);
  const ids = assignIds(loaded, wireUsed);
  // A codebase without client routes has no gateway clients, pomelo or other.
  const table: RouteTable = routed.size > 0 ? { ...routeTable(routed, ids), pomelo: pomeloSchema(loaded, ids, pomeloNamed) } : routeTable(routed, ids);
  const locals = new Map(loaded.files.map((f) => [f, localNames(f)]));
  const ctx: GenContext = { loaded, ids, importFrom, ambiguous: ambiguousNames([...locals.values()]) };

  const withMethods = new Set(rpcs.map((r) => r.service));
  const files: GeneratedFile[] = [];
  const exports = new Map<ProtoFile, FileExports>();
  for (const file of loaded.files) {
    files.push({ path: outPathOf(file.rel), content: emitFile(ctx, file, locals.get(file) as Set<string>, rpcs) });
    exports.set(file, exportsOf(ctx, file, withMethods));
  }
  files.push({ path: SHARED_FILES.mt, content: emitDescriptor(loaded, importFrom) });
  if (rpcs.length > 0) files.push({ path: SHARED_FILES.nodeOf, content: emitRuntime(loaded, importFrom) });
  files.push({ path: 'index.ts', content: emitIndex(ctx, exports, table) });
  files.push({ path: 'routes.json', content: `${JSON.stringify(table, null, 2)}\n` });
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, routes: table, messages: ids.size, services: withMethods.size };
}

function emitFile(ctx: GenContext, file: ProtoFile, locals: ReadonlySet<string>, rpcs: readonly Rpc[]): string {
  const out = outPathOf(file.rel);
  if (RESERVED_OUT.has(out)) throw new CodegenError(`${displayPath(file.abs)}: its generated ${out} would replace the shared one; rename the .proto file`);
  const scope = new FileScope(ctx, file, out, locals);
  const body = [...emitMessages(scope), ...emitServices(scope, rpcs)];
  const imports = scope.importLines();
  return [header([file.rel]), ...imports, ...(imports.length > 0 ? [''] : []), ...body, ''].join('\n');
}

/** The names a file declares; two declarations with one TypeScript name are an error. */
function localNames(file: ProtoFile): Set<string> {
  const owners = new Map<string, string>([['MsgId', 'the generated MsgId table']]);
  const claim = (name: string, owner: string) => {
    const other = owners.get(name);
    if (other) throw new CodegenError(`${displayPath(file.abs)}: the TypeScript name ${name} is used by both ${other} and ${owner}`);
    owners.set(name, owner);
  };
  for (const decl of file.decls) claim(tsName(decl), protoName(decl));
  for (const service of file.services) {
    claim(tsName(service), `service ${protoName(service)}`);
    claim(`${tsName(service)}Impl`, `the handler interface of service ${protoName(service)}`);
  }
  return new Set(owners.keys());
}

function ambiguousNames(perFile: readonly ReadonlySet<string>[]): Set<string> {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const names of perFile) for (const n of names) (seen.has(n) ? twice : seen).add(n);
  twice.delete('MsgId');
  return twice;
}

/**
 * Writes the files (only those whose content changed, so watchers and
 * incremental builds stay quiet) and removes generated .ts files left over
 * from .proto files that no longer exist. Files without the generated
 * header are never touched.
 */
export function writeGenerated(outDir: string, result: GenerateResult): { written: number; removed: number } {
  let written = 0;
  const keep = new Set(result.files.map((f) => f.path));
  for (const file of result.files) {
    const path = join(outDir, ...file.path.split('/'));
    if (readOrUndefined(path) === file.content) continue;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.content);
    written++;
  }
  let removed = 0;
  for (const rel of listTs(outDir, '')) {
    const path = join(outDir, ...rel.split('/'));
    if (!keep.has(rel) && readOrUndefined(path)?.startsWith(HEADER_PREFIX)) {
      unlinkSync(path);
      removed++;
    }
  }
  return { written, removed };
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function listTs(dir: string, prefix: string): string[] {
  const out: string[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    // A subdirectory with its own _descriptor.ts is another generation's output: not ours to clean.
    const foreign = () => readOrUndefined(join(dir, ...rel.split('/'), SHARED_FILES.mt))?.startsWith(HEADER_PREFIX);
    if (entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== 'node_modules' && !foreign()) out.push(...listTs(dir, rel));
    else if (entry.isFile() && entry.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

// Re-exported for tooling that wants to inspect a .proto tree the same way.
export { loadProtos, type LoadedProtos, type ProtoFile } from './load.js';
