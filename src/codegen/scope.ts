import protobuf from 'protobufjs';
import { CodegenError, displayPath } from './errors.js';
import type { AssignedId } from './ids.js';
import type { LoadedProtos, ProtoFile } from './load.js';
import { byString, importPath, outPathOf, protoName, runtimeSpecifier, tsName } from './names.js';

/** What every emitter needs to know about the whole generation. */
export interface GenContext {
  readonly loaded: LoadedProtos;
  readonly ids: ReadonlyMap<string, AssignedId>;
  /** The runtime module as given on the command line (see runtimeSpecifier). */
  readonly importFrom: string;
  /** TypeScript names declared in more than one generated file: imports of them are aliased. */
  readonly ambiguous: ReadonlySet<string>;
}

export type RuntimeName = 'CallContext' | 'CallOptions' | 'Init' | 'MessageType' | 'ServiceNode' | 'Target';
export type SharedName = 'mt' | 'nodeOf';

/** Generated files shared by every per-proto file. */
export const SHARED_FILES: Readonly<Record<SharedName, string>> = { mt: '_descriptor.ts', nodeOf: '_runtime.ts' };
const INTERNAL: ReadonlySet<string> = new Set(['CallContext', 'CallOptions', 'Init', 'MessageType', 'ServiceNode', 'Target', 'mt', 'nodeOf']);

interface Imported {
  local: string;
  typeOnly: boolean;
}

/**
 * The names visible in one generated file, and the imports that make them
 * so. Proto identifiers never contain "$", so aliases with a "$" can never
 * collide with a declared name: imported types that would clash become
 * "pkg$Name$", runtime helpers become "gm$Name".
 */
export class FileScope {
  private readonly imports = new Map<string, Map<string, Imported>>();

  constructor(
    readonly ctx: GenContext,
    readonly file: ProtoFile,
    /** This file's path relative to the output directory. */
    readonly out: string,
    readonly locals: ReadonlySet<string>,
  ) {}

  /** The name of a message or enum here, importing it from its own generated file if needed. */
  ref(obj: protobuf.Type | protobuf.Enum, use: 'type' | 'value', where: string): string {
    const owner = this.ctx.loaded.fileOf(obj);
    if (!owner) {
      const from = obj.filename ? ` (from ${displayPath(obj.filename)})` : '';
      throw new CodegenError(`${displayPath(this.file.abs)}: ${where} uses ${protoName(obj)}${from}, which is not declared under ${displayPath(this.ctx.loaded.dir)}; only types from the generated .proto files can be used`);
    }
    const name = tsName(obj);
    if (owner === this.file) return name;
    const clash = this.locals.has(name) || INTERNAL.has(name) || this.ctx.ambiguous.has(name);
    const local = clash ? `${protoName(obj).replace(/\./g, '$')}$` : name;
    this.add(importPath(this.out, outPathOf(owner.rel)), name, local, use === 'type');
    return local;
  }

  /** A runtime export (from --import-from). */
  runtime(name: RuntimeName, use: 'type' | 'value' = 'type'): string {
    const local = this.locals.has(name) ? `gm$${name}` : name;
    this.add(runtimeSpecifier(this.ctx.importFrom, this.out), name, local, use === 'type');
    return local;
  }

  /** A helper from one of the shared generated files. */
  shared(name: SharedName): string {
    const local = this.locals.has(name) ? `gm$${name}` : name;
    this.add(importPath(this.out, SHARED_FILES[name]), name, local, false);
    return local;
  }

  /** A global type, unless a declaration here shadows it. */
  global(name: 'Promise' | 'Uint8Array'): string {
    if (this.locals.has(name)) throw new CodegenError(`${displayPath(this.file.abs)}: the name ${name} would shadow the global TypeScript type the generated code uses; rename the declaration`);
    return name;
  }

  private add(specifier: string, name: string, local: string, typeOnly: boolean): void {
    let names = this.imports.get(specifier);
    if (!names) this.imports.set(specifier, (names = new Map()));
    const existing = names.get(name);
    if (existing) existing.typeOnly &&= typeOnly;
    else names.set(name, { local, typeOnly });
  }

  /** Import declarations: packages first, then relative paths; everything sorted. */
  importLines(): string[] {
    const specifiers = [...this.imports.keys()].sort(byString((s) => `${s.startsWith('.') ? 1 : 0}${s}`));
    return specifiers.map((specifier) => {
      const entries = [...(this.imports.get(specifier) as Map<string, Imported>)].sort(byString(([name]) => name));
      const allTypes = entries.every(([, e]) => e.typeOnly);
      const list = entries.map(([name, e]) => `${!allTypes && e.typeOnly ? 'type ' : ''}${name === e.local ? name : `${name} as ${e.local}`}`);
      return `import ${allTypes ? 'type ' : ''}{ ${list.join(', ')} } from '${specifier}';`;
    });
  }
}
