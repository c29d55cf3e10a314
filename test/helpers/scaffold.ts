/**
 * The package as a user gets it: `npm pack` of this checkout (already built:
 * npm test builds first) unpacked in a temporary folder, for the tests that
 * run `gamemesh init` from the tarball (init-pack, tutorial).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './proc.js';

const run = promisify(execFile);

/** The environment for npm and the new project: none of this test run's npm, test-runner or gamemesh variables. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', NO_COLOR: '1' };
  for (const key of Object.keys(env)) {
    // NODE_TEST_CONTEXT, inherited, would make the project's own `node --test` skip its files.
    if (key.startsWith('npm_package_') || key.startsWith('npm_lifecycle_') || key.startsWith('GAMEMESH_') || key === 'NODE_TEST_CONTEXT') delete env[key];
  }
  return env;
}

export async function npm(args: readonly string[], cwd: string, timeoutMs: number, env = cleanEnv()): Promise<string> {
  try {
    const { stdout, stderr } = await run('npm', args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

export interface Packed {
  /** The .tgz. */
  tarball: string;
  /** The unpacked package's bin/gamemesh.js. */
  bin: string;
}

/** npm pack into `dir` (--ignore-scripts: the build already ran) and unpack it there. */
export async function packGamemesh(dir: string): Promise<Packed> {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'browser', 'gamemesh-client.js'))) throw new Error('dist/browser/gamemesh-client.js is missing: npm run build first');
  const out = await npm(['pack', '--ignore-scripts', '--pack-destination', dir], ROOT, 60_000);
  const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const tarball = path.join(dir, `gamemesh-${version}.tgz`);
  if (!fs.existsSync(tarball)) throw new Error(`npm pack did not make ${tarball}: ${out}`);
  const unpacked = path.join(dir, 'unpacked');
  fs.mkdirSync(unpacked);
  await run('tar', ['xzf', tarball, '-C', unpacked]);
  return { tarball, bin: path.join(unpacked, 'package', 'bin', 'gamemesh.js') };
}
