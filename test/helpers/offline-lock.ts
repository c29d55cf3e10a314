/**
 * A package-lock.json for a project made by `gamemesh init`, so that its
 * `npm install --offline` needs nothing but the npm cache and the tarball.
 *
 * Offline, npm cannot resolve a version range (that needs the registry's
 * package document, which `npm ci` never fetches); with a lockfile it only
 * needs each tarball, found in the cache by its integrity. The versions are
 * those of gamemesh's own package-lock.json, which `npm ci` has just put in
 * the cache: the subtree under gamemesh's dependencies, plus the project's
 * dev tools. A user online needs none of this; it stands in for the registry.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  [key: string]: unknown;
}

interface Lock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

/** Where npm finds `dep` for the package at `from` ("" is the root): the nearest node_modules up the tree. */
function locate(packages: Record<string, LockEntry>, from: string, dep: string): string | undefined {
  let dir = from;
  for (;;) {
    const at = `${dir ? `${dir}/` : ''}node_modules/${dep}`;
    if (packages[at]) return at;
    if (!dir) return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

/** Writes `project`/package-lock.json; `tarball` is the gamemesh .tgz the project depends on as `file:`. */
export function writeOfflineLock(gamemeshRoot: string, project: string, tarball: string): void {
  const own = JSON.parse(fs.readFileSync(path.join(gamemeshRoot, 'package-lock.json'), 'utf8')) as Lock;
  const ownPkg = JSON.parse(fs.readFileSync(path.join(gamemeshRoot, 'package.json'), 'utf8')) as { version: string; license?: string; dependencies: Record<string, string>; engines?: Record<string, string>; bin?: Record<string, string> };
  const pkg = JSON.parse(fs.readFileSync(path.join(project, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
  if (own.lockfileVersion !== 3) throw new Error(`gamemesh's package-lock.json is version ${own.lockfileVersion}; this helper reads version 3`);

  const packages: Record<string, LockEntry> = {};
  // Every entry reached from `roots`; `dev` when reached only through the dev tools.
  const reach = (roots: Record<string, string>, from: string, dev: boolean) => {
    const queue: Array<[string, string]> = Object.keys(roots).map((d) => [from, d]);
    while (queue.length > 0) {
      const [at, dep] = queue.shift() as [string, string];
      const found = locate(own.packages, at === 'node_modules/gamemesh' ? '' : at, dep);
      if (!found) continue; // an optional dependency for another platform
      const seen = packages[found];
      if (seen && (dev || !seen.dev)) continue;
      const { dev: _d, optional: _o, devOptional: _do, peer: _p, ...entry } = own.packages[found] as LockEntry;
      packages[found] = dev ? { ...entry, dev: true } : entry;
      for (const next of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) queue.push([found, next]);
    }
  };
  reach(ownPkg.dependencies, 'node_modules/gamemesh', false);
  reach(pkg.devDependencies, '', true);

  const integrity = `sha512-${createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
  const lock = {
    name: pkg.name,
    version: pkg.version,
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: pkg.name, version: pkg.version, dependencies: pkg.dependencies, devDependencies: pkg.devDependencies },
      'node_modules/gamemesh': {
        version: ownPkg.version,
        resolved: pkg.dependencies['gamemesh'],
        integrity,
        license: ownPkg.license,
        dependencies: ownPkg.dependencies,
        bin: ownPkg.bin,
        engines: ownPkg.engines,
      },
      ...Object.fromEntries(Object.entries(packages).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
  fs.writeFileSync(path.join(project, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
}
