/**
 * Secrets a cluster file asks `gamemesh up` to keep (`"secrets": {"ENV":
 * "path"}`): on the first start each is generated at random and written to
 * its file (0600, in a folder made 0700); later starts read it back. Every
 * service gets it in its environment, so a cluster never runs on a secret
 * that ships with the code (docs/cluster-file.md).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ClusterFileError } from './config.js';

export interface KeptSecret {
  readonly env: string;
  /** As written in the file (variables substituted), for messages. */
  readonly file: string;
  readonly value: string;
  /** Made by this start. */
  readonly created: boolean;
}

/** Reads or makes each secret; files are relative to `cwd`. */
export function keepSecrets(secrets: Readonly<Record<string, string>>, cwd: string, source: string): KeptSecret[] {
  return Object.entries(secrets).map(([env, file]) => {
    const full = path.resolve(cwd, file);
    const fail = (err: unknown) => new ClusterFileError(source, `secrets.${env}`, `cannot keep the secret in ${file}: ${(err as Error).message}`);
    try {
      if (existsSync(full)) {
        // One an older version (or a hand) left readable to others is made private.
        if ((statSync(full).mode & 0o077) !== 0) chmodSync(full, 0o600);
        const value = readFileSync(full, 'utf8').trim();
        if (value === '') throw new Error('the file is empty; delete it to have a new secret made');
        return { env, file, value, created: false };
      }
      mkdirSync(path.dirname(full), { recursive: true, mode: 0o700 });
      const value = randomBytes(32).toString('base64url');
      // 'wx': two supervisors starting at once must not each make one.
      writeFileSync(full, `${value}\n`, { mode: 0o600, flag: 'wx' });
      return { env, file, value, created: true };
    } catch (err) {
      throw fail(err);
    }
  });
}

/** What the banner says about them: where each is and how to use it. */
export function secretLines(kept: readonly KeptSecret[]): string[] {
  return kept.map((s) =>
    s.env === 'GAMEMESH_TOKEN'
      ? `cluster token: ${s.file}${s.created ? ' (new)' : ''}; gamemesh sd run from here finds it, elsewhere pass --tokenfile ${s.file}`
      : `${s.env}: kept in ${s.file}${s.created ? ' (new)' : ''}`,
  );
}
