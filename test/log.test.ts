import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import {
  closeLogs,
  configureLogging,
  createLogger,
  flushLogs,
  isMessageMuted,
  levelFor,
  LogLevelError,
  logMessage,
  parseLevelSpec,
  parseSize,
  rootLogger,
  setupLogging,
} from '../src/log/index.js';
import { FIXTURES, waitFor } from './helpers/proc.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'gm-log-'));
after(async () => {
  await closeLogs();
  rmSync(dir, { recursive: true, force: true });
});

let dirs = 0;
function freshDir(): string {
  const d = join(dir, `d${++dirs}`);
  return d;
}

function readLines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function linesOnDisk(d: string): number {
  if (!existsSync(d)) return 0;
  return logFiles(d).reduce((sum, f) => sum + readFileSync(join(d, f), 'utf8').split('\n').length - 1, 0);
}

function logFiles(d: string): string[] {
  return readdirSync(d)
    .filter((f) => /^game\.\d+\.log$/.test(f))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
}

test('level rules: first whole-name match wins, a bare level sets the default', () => {
  const spec = parseLevelSpec('gateway.*|debug, discovery|warn, gateway.auth|error, error');
  assert.equal(levelFor(spec, 'gateway'), 'debug');
  assert.equal(levelFor(spec, 'gateway.agent'), 'debug');
  assert.equal(levelFor(spec, 'gateway.auth'), 'debug', 'the first matching rule decides, not the most specific');
  assert.equal(levelFor(spec, 'discovery'), 'warn');
  assert.equal(levelFor(spec, 'discovery.client'), 'error', 'a rule matches the whole name only');
  assert.equal(levelFor(spec, 'mydiscovery'), 'error');
  assert.equal(levelFor(spec, 'other'), 'error');

  const alt = parseLevelSpec('agent|gate|trace,WARNING');
  assert.equal(levelFor(alt, 'agent'), 'trace', 'the last | splits the level off, so regexes can alternate');
  assert.equal(levelFor(alt, 'gate'), 'trace');
  assert.equal(levelFor(alt, 'x'), 'warn');
  assert.deepEqual(parseLevelSpec('debug'), { defaultLevel: 'debug', rules: [] });
  assert.equal(parseLevelSpec('').defaultLevel, 'info');

  assert.throws(() => parseLevelSpec('loud'), LogLevelError);
  assert.throws(() => parseLevelSpec('gate|loud'), /bad log level "loud"/);
  assert.throws(() => parseLevelSpec('gate(|debug'), /bad log level rule "gate\(\|debug"/);
});

test('sizes parse as bytes with k, m and g', () => {
  assert.equal(parseSize('123'), 123);
  assert.equal(parseSize('10k'), 10240);
  assert.equal(parseSize('10KB'), 10240);
  assert.equal(parseSize('1.5m'), 1.5 * 1024 * 1024);
  assert.equal(parseSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseSize('512b'), 512);
  assert.throws(() => parseSize('10x'), RangeError);
  assert.throws(() => parseSize(''), RangeError);
});

test('setupLogging sets the level of loggers created before and after it', async () => {
  const early = createLogger('gateway.agent');
  const earlyDisc = createLogger('discovery');
  // No output is configured: nothing is logged here, and stderr's writer opens only on a first line.
  setupLogging({ loglevel: 'gateway.*|debug,discovery|warn,error' });
  assert.equal(early.level, 'debug');
  assert.equal(earlyDisc.level, 'warn');
  assert.equal(createLogger('discovery').level, 'warn');
  assert.equal(createLogger('login').level, 'error');
  assert.equal(rootLogger().level, 'error');
  assert.equal(early.isLevelEnabled('debug'), true);
  assert.equal(earlyDisc.isLevelEnabled('info'), false);

  setupLogging({ loglevel: 'info' });
  assert.equal(early.level, 'info');
  assert.equal(earlyDisc.level, 'info');

  // A bad option throws before anything changes.
  assert.throws(() => setupLogging({ loglevel: 'gateway.*|shout' }), LogLevelError);
  assert.throws(() => setupLogging({ loglevel: 'debug', logfilesize: 'huge' }), RangeError);
  assert.equal(early.level, 'info');
});

test('configureLogging hands logging to a logger of the caller; setupLogging takes it back', async () => {
  const lines: string[] = [];
  const custom = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
  configureLogging(custom);
  const log = createLogger('custom.child');
  assert.equal(log.level, 'warn');
  log.warn('to the custom logger');
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /"name":"custom.child".*"msg":"to the custom logger"/);

  setupLogging({ loglevel: 'custom.*|debug' });
  assert.equal(createLogger('custom.child').level, 'debug');
  assert.notEqual(createLogger('custom.child'), log);
});

test('a log file is rotated when it exceeds logfilesize, and no line is lost', async () => {
  const d = freshDir();
  setupLogging({ loglevel: 'rot|debug,info', logfile: join(d, 'game.log'), logfilesize: '1k' });
  const log = createLogger('rot');
  const quiet = createLogger('quiet');
  let n = 0;
  for (let batch = 0; batch < 8; batch++) {
    for (let i = 0; i < 15; i++) log.debug({ n: n++ }, 'a line long enough to fill the kilobyte quickly');
    quiet.debug('below the default level');
    // Rotation is checked per write the transport makes: let each batch land as a write of its own.
    await flushLogs();
    await waitFor(() => linesOnDisk(d) === n, 3000, `${n} lines on disk`);
  }
  await closeLogs();

  const files = logFiles(d);
  assert.ok(files.length >= 3, `expected several files, got ${files.join(', ')}`);
  const lines = files.flatMap((f) => readLines(join(d, f)));
  assert.deepEqual(
    lines.map((l) => l['n']),
    Array.from({ length: n }, (_, i) => i),
    'every line, in order, across the files',
  );
  assert.ok(lines.every((l) => l['name'] === 'rot' && l['level'] === 20));
});

test('message logs: muted names are dropped, others logged at debug', async () => {
  const d = freshDir();
  setupLogging({ loglevel: 'net|debug,info', logfile: join(d, 'game.log'), mutemsglog: 'PingREQ|PingACK, HeartBeat' });
  assert.equal(isMessageMuted('PingACK'), true);
  assert.equal(isMessageMuted('Move'), false);
  const net = createLogger('net');
  const off = createLogger('offnet');
  let serialized = 0;
  const body = (x: number): unknown => ({ x, toJSON: () => (serialized++, { x }) });

  logMessage(net, 'send', 'PingREQ', '127.0.0.1:5000', 1, body(1));
  logMessage(net, 'recv', 'HeartBeat', '127.0.0.1:5000', 2, body(2));
  logMessage(net, 'recv', 'Move', '127.0.0.1:5000', 3, body(3));
  logMessage(net, 'send', 'Chat', 'sid=7', 4);
  // Muted by the name without its package, too.
  logMessage(net, 'send', 'game.PingACK', 'sid=7', 5);
  logMessage(off, 'recv', 'Move', '127.0.0.1:5000', 6, body(4));
  assert.equal(serialized, 1, 'only the logged body was serialized');
  await closeLogs();

  const lines = readLines(join(d, logFiles(d)[0] ?? 'missing'));
  assert.deepEqual(
    lines.map((l) => [l['level'], l['name'], l['dir'], l['msgName'], l['peer'], l['size'], l['body'], l['msg']]),
    [
      [20, 'net', 'recv', 'Move', '127.0.0.1:5000', 3, { x: 3 }, 'recv Move'],
      [20, 'net', 'send', 'Chat', 'sid=7', 4, undefined, 'send Chat'],
    ],
  );
});

test('a muted or disabled message log costs next to nothing', () => {
  setupLogging({ loglevel: 'hot|debug,info', mutemsglog: 'Ping' });
  const hot = createLogger('hot');
  const cold = createLogger('cold');
  const body = { big: 'x'.repeat(1000) };
  const start = process.hrtime.bigint();
  for (let i = 0; i < 1_000_000; i++) {
    logMessage(hot, 'recv', 'Ping', 'peer', 10, body);
    logMessage(cold, 'send', 'Move', 'peer', 10, body);
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  // About 10 ms here; formatting even one line per call would take seconds.
  assert.ok(ms < 1000, `2M skipped message logs took ${ms.toFixed(0)} ms`);
});

test('lines logged right before process.exit() reach the file', async () => {
  for (const mode of ['exit', 'close']) {
    const d = freshDir();
    await run(process.execPath, [join(FIXTURES, 'log-child.js'), mode, join(d, 'game.log'), '2000'], { timeout: 10_000 });
    const lines = readLines(join(d, 'game.1.log'));
    assert.equal(lines.length, 2000, mode);
    assert.equal(lines[1999]?.['i'], 1999);
  }
});

test('an unwritable log file is reported once, and logging carries on on stderr', async () => {
  const d = freshDir();
  mkdirSync(d);
  writeFileSync(join(d, 'notadir'), '');
  const logfile = join(d, 'notadir', 'game.log');
  const { stdout, stderr } = await run(process.execPath, [join(FIXTURES, 'log-child.js'), 'badfile', logfile, '2'], { timeout: 10_000 });
  assert.equal(stdout, '');
  assert.equal(stderr.match(/log output failed/g)?.length, 1, stderr);
  assert.match(stderr, /"msg":"after the failure 0"/);
  assert.match(stderr, /"msg":"after the failure 1"/);
});

test('logcolor pretty-prints in color on stderr', async () => {
  const { stdout, stderr } = await run(process.execPath, [join(FIXTURES, 'log-child.js'), 'color', '-', '3'], { timeout: 10_000 });
  assert.equal(stdout, '');
  assert.ok(stderr.includes('\u001b['), 'ANSI colors');
  assert.match(stderr, /INFO.*\(child\/\d+\).*line 2/);
  assert.doesNotMatch(stderr, /"level":/, 'not JSON');
});
