/**
 * `gamemesh init <folder>`: a new game project from the template in this
 * package (templates/basic), so that what a user starts from is what the
 * package's own tests build and run (test/init-pack.test.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, UsageError } from './args.js';

/** This file runs as dist/src/cli/init.js. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const TEMPLATES = path.join(PACKAGE_ROOT, 'templates');

const HELP = `usage: gamemesh init <folder> [--template basic] [--name NAME] [--gamemesh SPEC]

Creates a game project in <folder> (new, or empty): proto/ with a message
pair and its route, a game service with a handler and a room, cluster.json,
a web page, a test on gamemesh/testing. Then: cd <folder> && npm install && npm start

  --name NAME       the package name (default: the folder's name)
  --gamemesh SPEC   the gamemesh dependency (default ^VERSION of this gamemesh;
                    e.g. file:../gamemesh-0.1.0.tgz)
  --template NAME   default basic
`;

/** npm's rules for a new package name, in short: lowercase, URL-safe, no leading dot or underscore. */
const PACKAGE_NAME = /^(?:@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/;
/** Files whose text gets __NAME__ replaced; others are copied byte for byte. */
const TEXT = /\.(?:json|md|ts|html|proto|css|js)$|^gitignore$/;
/** npm never packs a .gitignore, so the template keeps it under this name. */
const RENAMES: Readonly<Record<string, string>> = { gitignore: '.gitignore' };

export async function main(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parse(argv, { name: { type: 'string' }, gamemesh: { type: 'string' }, template: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
    if (values['help']) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `one folder expected, got ${positionals.join(' ')}` : 'which folder? e.g. gamemesh init my-game');
    const folder = path.resolve(positionals[0] as string);
    const name = (values['name'] as string | undefined) ?? path.basename(folder);
    if (!PACKAGE_NAME.test(name) || name.length > 214) {
      throw new UsageError(`${JSON.stringify(name)} is not a valid npm package name (lowercase letters, digits, '-', '.', '_'); pass --name`);
    }
    const template = (values['template'] as string | undefined) ?? 'basic';
    const from = path.join(TEMPLATES, template);
    if (!/^[a-z0-9-]+$/.test(template) || !existsSync(from)) {
      throw new UsageError(`no template ${JSON.stringify(template)} (there are: ${readdirSync(TEMPLATES).join(', ')})`);
    }
    if (existsSync(folder) && (!statSync(folder).isDirectory() || readdirSync(folder).length > 0)) {
      process.stderr.write(`gamemesh init: ${folder} exists and is not an empty folder; nothing was written\n`);
      return 1;
    }
    const own = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies?: Record<string, string> };
    const gamemesh = (values['gamemesh'] as string | undefined) ?? `^${own.version}`;
    const written = copyTemplate(from, folder, { __NAME__: name });
    fixPackageJson(path.join(folder, 'package.json'), gamemesh, own.devDependencies ?? {});
    const shown = path.relative(process.cwd(), folder) || '.';
    process.stdout.write(`gamemesh init: created ${name} in ${shown} (${written} files)\n\n  cd ${shown}\n  npm install && npm start   # then open http://127.0.0.1:8080/\n  npm test\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`gamemesh init: ${err.message}\n${HELP}`);
    return 2;
  }
}

function copyTemplate(from: string, to: string, vars: Readonly<Record<string, string>>): number {
  mkdirSync(to, { recursive: true });
  let count = 0;
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = path.join(to, RENAMES[entry.name] ?? entry.name);
    if (entry.isDirectory()) {
      count += copyTemplate(src, dest, vars);
    } else if (TEXT.test(entry.name)) {
      let text = readFileSync(src, 'utf8');
      for (const [key, value] of Object.entries(vars)) text = text.split(key).join(value);
      writeFileSync(dest, text);
      count++;
    } else {
      copyFileSync(src, dest);
      count++;
    }
  }
  return count;
}

/** The dependency on gamemesh, and the tool versions gamemesh itself is built and tested with. */
function fixPackageJson(file: string, gamemesh: string, tools: Readonly<Record<string, string>>): void {
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  pkg.dependencies['gamemesh'] = gamemesh;
  for (const dep of Object.keys(pkg.devDependencies)) {
    const version = tools[dep];
    if (!version) throw new Error(`the template needs ${dep}, which gamemesh's package.json does not name`);
    pkg.devDependencies[dep] = version;
  }
  writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
}
