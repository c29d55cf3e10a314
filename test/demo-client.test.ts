/** The pure parts of the terminal client and the bots: typed lines, what reaches the terminal, percentiles, the login limit. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError } from '../src/client/index.js';
import { Limit } from '../demo/bots/limit.js';
import { percentile } from '../demo/bots/stats.js';
import { parseCommand } from '../demo/client/commands.js';
import { chatLine, errorLine, printable } from '../demo/client/view.js';

test('typed lines become commands; chat is the default', () => {
  assert.deepEqual(parseCommand('  hello  world '), { kind: 'say', text: 'hello  world' });
  assert.deepEqual(parseCommand('//slash at the start'), { kind: 'say', text: '/slash at the start' });
  assert.deepEqual(parseCommand('/w bob  two  spaces'), { kind: 'whisper', to: 'bob', text: 'two  spaces' });
  assert.deepEqual(parseCommand('/GOLD'), { kind: 'gold' });
  assert.deepEqual(parseCommand('/level'), { kind: 'level' });
  assert.deepEqual(parseCommand(''), { kind: 'none' });
  assert.equal(parseCommand('/w bob').kind, 'bad');
  assert.equal(parseCommand('/gold 5').kind, 'bad');
  assert.match((parseCommand('/nope') as { message: string }).message, /unknown command \/nope/);
});

test('control characters from other players never reach the terminal', () => {
  assert.equal(printable('a\u001b[2Jb\u009b31mc\u202ed\r\n'), 'a [2Jb 31mc d  ');
  const line = chatLine({ channel: 'world', from: 'eve\u001b]0;pwn\u0007', text: 'hi\u009b2J', time_ms: 0 }, 'me');
  // eslint-disable-next-line no-control-regex -- looking for exactly those
  assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/);
  assert.match(line, /\[world\] eve ]0;pwn : hi 2J$/);
  assert.match(chatLine({ channel: 'whisper', from: 'bob', text: 'psst', time_ms: 0 }, 'me'), /\[whisper from bob\] psst$/);
});

test('errors read as what happened', () => {
  assert.equal(errorLine('earning gold', new ClientError('unavailable', 'game (game#0@dev) is not reachable right now')), '! earning gold: the server is unavailable right now (game (game#0@dev) is not reachable right now); try again in a moment');
  assert.equal(errorLine('chat', new ClientError('bad_request', 'empty message')), '! chat failed (bad_request): empty message');
});

test('nearest-rank percentiles', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 95), 95);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('Limit runs at most max tasks at once, in order', async () => {
  const limit = new Limit(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 7 }, (_, i) =>
      limit.run(async () => {
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        if (i === 3) throw new Error('a failing task frees its slot too');
      }).catch(() => undefined),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6]);
});
