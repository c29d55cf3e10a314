import { isAbsolute, relative } from 'node:path';

/** Bad input to `gamemesh gen`: the message is one line a user can act on. */
export class CodegenError extends Error {
  override name = 'CodegenError';
}

/** A path as the user would type it: relative to the working directory when inside it. */
export function displayPath(path: string): string {
  if (!isAbsolute(path)) return path;
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}
