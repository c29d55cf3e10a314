#!/usr/bin/env node
/**
 * Fails when a public export has no doc comment. Public means exported by an
 * entry point of package.json's `exports` (its `types` file, mapped back to
 * src/); members of classes and interfaces are not checked, the exports
 * themselves are. Part of npm test; `npm run docs` (TypeDoc) renders the
 * same comments as the API reference.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const entries = Object.values(pkg.exports)
  .filter((e) => typeof e === 'object' && typeof e.types === 'string')
  .map((e) => path.join(ROOT, e.types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts')));

const program = ts.createProgram(entries, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] });
const checker = program.getTypeChecker();
const missing = new Map();
for (const entry of entries) {
  const source = program.getSourceFile(entry);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`check-docs: cannot read ${path.relative(ROOT, entry)}`);
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const decls = symbol.declarations ?? [];
    // Declared outside this package (a re-exported type of a dependency): its docs are its own.
    if (decls.length === 0 || decls.every((d) => d.getSourceFile().fileName.includes('/node_modules/'))) continue;
    const documented = decls.some((d) => ts.getJSDocCommentsAndTags(d).length > 0 || (ts.isVariableDeclaration(d) && ts.getJSDocCommentsAndTags(d.parent.parent).length > 0));
    if (documented) continue;
    const d = decls[0];
    const file = d.getSourceFile();
    const { line } = file.getLineAndCharacterOfPosition(d.getStart());
    missing.set(`${path.relative(ROOT, file.fileName)}:${line + 1}`, `${exported.name} (${path.relative(ROOT, entry)})`);
  }
}
if (missing.size > 0) {
  const lines = [...missing].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([where, what]) => `  ${where}  ${what}`);
  console.error(`check-docs: ${missing.size} public exports have no doc comment (/** ... */ above the declaration):\n${lines.join('\n')}`);
  process.exitCode = 1;
} else {
  console.log(`check-docs: every public export of ${entries.length} entry points has a doc comment`);
}
