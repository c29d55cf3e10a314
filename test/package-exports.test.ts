/**
 * What the docs import from 'gamemesh' works for a package consumer: every
 * `import { ... } from 'gamemesh...'` in README.md and docs/*.md is run
 * from a temp project whose node_modules/gamemesh links to this package, so
 * package.json `exports` decides what resolves, as it does after `npm
 * install gamemesh`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, tempDir } from './helpers/proc.js';

const run = promisify(execFile);

function documentedImports(): Map<string, Set<string>> {
  const files = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
  const out = new Map<string, Set<string>>();
  for (const file of files) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/import \{([^}]+)\} from '(gamemesh(?:\/[^']*)?)'/g)) {
      const names = (m[1] as string)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '' && !s.startsWith('type '));
      const set = out.get(m[2] as string) ?? new Set<string>();
      for (const n of names) set.add(n);
      out.set(m[2] as string, set);
    }
  }
  return out;
}

test("every import the docs show resolves through the package's exports", async (t) => {
  const imports = documentedImports();
  assert.ok(imports.get('gamemesh/up')?.has('startCluster'), 'the docs show the startCluster import');
  const dir = tempDir(t, 'gamemesh-consumer-');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'gamemesh'), 'dir');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  const lines = [...imports].flatMap(([spec, names], i) => [
    `import * as m${i} from '${spec}';`,
    `for (const n of ${JSON.stringify([...names])}) if (m${i}[n] === undefined) missing.push('${spec}: ' + n);`,
  ]);
  fs.writeFileSync(path.join(dir, 'check.mjs'), ['const missing = [];', ...lines.filter((l) => l.startsWith('import')), ...lines.filter((l) => !l.startsWith('import')), "console.log(JSON.stringify(missing));"].join('\n'));
  const { stdout } = await run(process.execPath, ['check.mjs'], { cwd: dir, timeout: 20_000 });
  assert.deepEqual(JSON.parse(stdout) as string[], [], 'names the docs import that the package does not export');
  // And the old, internal path stays closed: only `exports` is the API.
  await assert.rejects(run(process.execPath, ['--input-type=module', '-e', "await import('gamemesh/dist/src/up/supervisor.js')"], { cwd: dir, timeout: 20_000 }), /ERR_PACKAGE_PATH_NOT_EXPORTED/);
});
