import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('npm run example:echo: discovery, server and client as processes; 10 replies; exit 0', async () => {
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, ['dist/examples/echo/run.js'], { cwd: root, timeout: 30_000 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
  assert.equal(code, 0, stdout);
  const replies = stdout.split('\n').filter((l) => /^\[client\] reply \d+ from echo#0@dev: hello \d+$/.test(l));
  assert.equal(replies.length, 10);
  assert.match(stdout, /echo example: 10 replies, done/);
});
