/** Small node:http helpers for the HTTP endpoints (login, admin port, dashboard): JSON replies and a bounded JSON body reader. */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** A failure with the HTTP status and message the client should see. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** The body's remainder is read and thrown away up to this much, so the 413 reply is not lost to a reset. */
const MAX_DISCARD = 1024 * 1024;

export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** Parses a JSON request body of at most `limit` bytes; throws HttpError 400 or 413. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    discard(req);
    throw new HttpError(400, 'the body must be JSON (content-type: application/json)');
  }
  // Too big even to read and drop: answer at once and close, as the rest of it will not be read.
  if (Number(req.headers['content-length'] ?? NaN) > MAX_DISCARD) throw new HttpError(413, `the body must be at most ${limit} bytes`, { connection: 'close' });
  const text = await readText(req, limit);
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

function readText(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > MAX_DISCARD) req.destroy();
    });
    req.once('end', () => {
      if (size > limit) reject(new HttpError(413, `the body must be at most ${limit} bytes`));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.once('error', (err) => reject(new HttpError(400, `the request failed: ${err.message}`)));
    req.once('close', () => {
      if (!req.complete) reject(new HttpError(400, 'the request ended before its body did'));
    });
  });
}

/** Reads and drops a body we will not use, bounded, so the reply still reaches the client. */
export function discard(req: IncomingMessage): void {
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_DISCARD) req.destroy();
  });
  req.on('error', () => {});
}

/** server.listen as a promise that rejects on a listen error (a port in use). */
export function listenHttp(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A server's 'clientError' handler: malformed HTTP never reaches the handler; it still gets a JSON answer when the socket can take one. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify({ error: status === 431 ? 'request headers too large' : status === 408 ? 'request timeout' : 'malformed HTTP request' });
  socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
