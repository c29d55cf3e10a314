/**
 * `gamemesh init` on bad input: one clear line and exit code 2 (1 when the
 * folder is taken), nothing written; and what it writes: the project's name
 * in its files, the dependency on this gamemesh, the tool versions gamemesh
 * is built with, .gitignore under its real name. The full path from the
 * tarball to a running game is test/init-pack.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, runCli, tempDir } from './helpers/proc.js';

test('gamemesh init writes the template with the name and versions filled in', async (t) => {
  const dir = tempDir(t, 'gamemesh-init-cli-');
  const res = await runCli(['init', path.join(dir, 'space-race')]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /created space-race .*\n[\s\S]*npm install && npm start/);
  const project = path.join(dir, 'space-race');
  const pkg = JSON.parse(fs.readFileSync(path.join(project, 'package.json'), 'utf8')) as { name: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const own = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
  assert.equal(pkg.name, 'space-race');
  assert.equal(pkg.dependencies['gamemesh'], `^${own.version}`);
  assert.equal(pkg.devDependencies['typescript'], own.devDependencies['typescript']);
  assert.match(fs.readFileSync(path.join(project, 'cluster.json'), 'utf8'), /"name": "space-race"/);
  assert.ok(fs.existsSync(path.join(project, '.gitignore')) && !fs.existsSync(path.join(project, 'gitignore')));
  const left = (dirPath: string): string[] => fs.readdirSync(dirPath, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? left(path.join(dirPath, e.name)) : [fs.readFileSync(path.join(dirPath, e.name), 'utf8')]));
  assert.ok(left(project).every((text) => !text.includes('__NAME__') && !text.includes('__GAMEMESH__')), 'every placeholder is filled');

  const custom = await runCli(['init', path.join(dir, 'Odd Folder'), '--name', 'odd-game', '--gamemesh', 'file:../gamemesh.tgz']);
  assert.equal(custom.code, 0, custom.stderr);
  assert.equal((JSON.parse(fs.readFileSync(path.join(dir, 'Odd Folder', 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['gamemesh'], 'file:../gamemesh.tgz');
});

test('gamemesh init refuses bad input with one line, and writes nothing', async (t) => {
  const dir = tempDir(t, 'gamemesh-init-cli-');
  const cases: Array<[string[], number, RegExp]> = [
    [['init'], 2, /which folder\?/],
    [['init', 'a', 'b'], 2, /one folder expected/],
    [['init', path.join(dir, 'Bad Name')], 2, /not a valid npm package name .*pass --name/],
    [['init', path.join(dir, 'x'), '--template', 'nope'], 2, /no template "nope" \(there are: basic\)/],
    [['init', path.join(dir, 'x'), '--template', '../..'], 2, /no template/],
    [['init', path.join(dir, 'x'), '--bogus'], 2, /Unknown option '--bogus'/],
  ];
  for (const [args, code, message] of cases) {
    const res = await runCli(args);
    assert.equal(res.code, code, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, message);
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was written');
  fs.mkdirSync(path.join(dir, 'taken'));
  fs.writeFileSync(path.join(dir, 'taken', 'keep.txt'), 'mine');
  const taken = await runCli(['init', path.join(dir, 'taken')]);
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /exists and is not an empty folder; nothing was written/);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'taken')), ['keep.txt']);
  const help = await runCli(['init', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: gamemesh init <folder>/);
});
