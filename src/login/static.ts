/** Serves the demo's web page (or any static files) from one directory, never outside it. */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { HttpError } from '../service/http-util.js';

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** The directory's real path; throws when it is not a readable directory. */
export async function staticRoot(dir: string): Promise<string> {
  let root: string;
  try {
    root = await realpath(dir);
  } catch (err) {
    throw new Error(`static dir ${dir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!(await stat(root)).isDirectory()) throw new Error(`static dir ${dir} is not a directory`);
  return root;
}

/** `root` must come from staticRoot. Throws HttpError 400 or 404. */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string, pathname: string): Promise<void> {
  const { file, size } = await resolveFile(root, pathname);
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': size,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    const stream = createReadStream(file);
    // Headers are out, so a read error can only cut the reply short.
    stream.once('error', () => {
      res.destroy();
      resolve();
    });
    res.once('close', () => {
      stream.destroy();
      resolve();
    });
    stream.pipe(res);
  });
}

async function resolveFile(root: string, pathname: string): Promise<{ file: string; size: number }> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    throw new HttpError(400, 'the path is not valid percent-encoding');
  }
  if (decoded.includes('\0') || decoded.includes('\\')) throw new HttpError(400, 'the path holds a forbidden character');
  const segments = decoded.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new HttpError(400, "paths with '..' are not served");
  // Dotfiles (.env, .git) are never part of a page.
  if (segments.some((s) => s.startsWith('.'))) throw notFound();
  let file = path.join(root, ...segments);
  let info = await stat(file).catch(() => undefined);
  if (info?.isDirectory()) {
    file = path.join(file, 'index.html');
    info = await stat(file).catch(() => undefined);
  }
  if (!info?.isFile()) throw notFound();
  // A symlink inside the directory must not lead out of it.
  const real = await realpath(file).catch(() => undefined);
  if (!real || (real !== root && !real.startsWith(root + path.sep))) throw notFound();
  return { file: real, size: info.size };
}

function notFound(): HttpError {
  return new HttpError(404, 'not found');
}
