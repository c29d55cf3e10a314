import { posix } from 'node:path';
import protobuf from 'protobufjs';

/** "demo.Outer.Inner": the full name without protobufjs's leading dot. */
export function protoName(obj: protobuf.ReflectionObject): string {
  return obj.fullName.replace(/^\./, '');
}

/**
 * The TypeScript name of a message or enum: its path inside its package,
 * joined with "_" (demo.Outer.Inner -> Outer_Inner).
 */
export function tsName(obj: protobuf.ReflectionObject): string {
  const parts: string[] = [];
  let o: protobuf.ReflectionObject | null = obj;
  while (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service) {
    parts.unshift(o.name);
    o = o.parent;
  }
  return parts.join('_');
}

export function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** "sub/b.proto" -> "sub/b.ts", relative to the output directory. */
export function outPathOf(rel: string): string {
  return rel.replace(/\.proto$/, '.ts');
}

/** The specifier one generated file uses to import another ("./sub/b.js"). */
export function importPath(fromOut: string, toOut: string): string {
  const rel = posix.relative(posix.dirname(fromOut), toOut).replace(/\.ts$/, '.js');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/**
 * The runtime module as seen from a generated file. A relative --import-from
 * is written as seen from the output directory itself, so files in
 * subdirectories get one more "../" per level; anything else is a package
 * name (or absolute path) used verbatim.
 */
export function runtimeSpecifier(importFrom: string, fromOut: string): string {
  if (!importFrom.startsWith('.')) return importFrom;
  const depth = fromOut.split('/').length - 1;
  return depth === 0 ? importFrom : posix.join(...Array<string>(depth).fill('..'), importFrom);
}

/** A JSDoc block from a .proto comment; nothing when there is none. */
export function docLines(comment: string | null | undefined, indent = ''): string[] {
  const text = comment?.trim();
  if (!text) return [];
  const lines = text.split('\n').map((l) => l.trimEnd().replace(/\*\//g, '*\\/'));
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [`${indent}/**`, ...lines.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)), `${indent} */`];
}

/** A string literal for generated code. */
export function str(s: string): string {
  return `'${JSON.stringify(s).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

/** Code-unit order: output must not depend on the machine's locale. */
export function byString<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
}
