import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, envName, helpText, loadConfig, STANDARD_FLAGS } from '../src/service/config.js';

const dir = mkdtempSync(join(tmpdir(), 'gm-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function flagfile(text: string): string {
  const path = join(dir, `flags${++files}.conf`);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError `fn` throws (failing the test when it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('defaults when nothing is given', () => {
  const { config, values, args, help, sources } = loadConfig({ argv: [], env: {} });
  assert.deepEqual(config, {
    sdaddr: '127.0.0.1:8900',
    svcgroup: 'dev',
    svcindex: 0,
    svctype: -1,
    wanip: '',
    loglevel: 'info',
    logfile: '',
    logfilesize: 100 * 1024 * 1024,
    logcolor: false,
    mutemsglog: [],
    flagfile: '',
    token: '',
    cluster: 1,
    listen: '127.0.0.1:0',
    admin: '',
    svcversion: 1,
    'drain-max': 600,
    'stop-timeout': 8,
    hub: '',
    hubtoken: '',
    hubuser: '',
    hubpass: '',
    export: false,
    memlimit: 0,
    memthreshold: 0.9,
  });
  assert.deepEqual(values, {});
  assert.deepEqual(args, []);
  assert.equal(help, false);
  assert.equal(sources['sdaddr'], 'default');
});

test('precedence: flag > env var > flagfile > default', () => {
  const file = flagfile(['sdaddr=10.0.0.1:8900', 'svcgroup=fromfile', 'svcindex=1', 'token=filetoken'].join('\n'));
  const { config, sources } = loadConfig({
    argv: ['--svcindex', '3'],
    env: { GAMEMESH_FLAGFILE: file, GAMEMESH_SVCGROUP: 'fromenv', GAMEMESH_SVCINDEX: '2' },
  });
  assert.equal(config.svcindex, 3);
  assert.equal(config.svcgroup, 'fromenv');
  assert.equal(config.sdaddr, '10.0.0.1:8900');
  assert.equal(config.token, 'filetoken');
  assert.equal(config.cluster, 1);
  assert.equal(config.flagfile, file);
  assert.equal(sources['svcindex'], 'flag --svcindex');
  assert.equal(sources['svcgroup'], 'env GAMEMESH_SVCGROUP');
  assert.equal(sources['sdaddr'], `flagfile ${file}:1`);
  assert.equal(sources['token'], `flagfile ${file}:4`);
  assert.equal(sources['cluster'], 'default');
});

test('a --flagfile flag beats GAMEMESH_FLAGFILE, and an empty env var counts as unset', () => {
  const a = flagfile('svcgroup=a\n');
  const b = flagfile('svcgroup=b\n');
  const { config } = loadConfig({ argv: [`--flagfile=${b}`], env: { GAMEMESH_FLAGFILE: a, GAMEMESH_SVCINDEX: '' } });
  assert.equal(config.svcgroup, 'b');
  assert.equal(config.svcindex, 0);
});

test('flag syntax: --f v, --f=v, -f v, booleans, positionals and --', () => {
  const { config, args } = loadConfig({
    argv: ['--sdaddr', '127.0.0.1:9000', '--svcgroup=prod', '-svcindex', '7', '-cluster=3', '--logcolor', 'pos1', '--wanip=', '--', '--token', 'x'],
    env: {},
  });
  assert.equal(config.sdaddr, '127.0.0.1:9000');
  assert.equal(config.svcgroup, 'prod');
  assert.equal(config.svcindex, 7);
  assert.equal(config.cluster, 3);
  assert.equal(config.logcolor, true);
  assert.equal(config.wanip, '');
  // A boolean never takes the next argument; after -- nothing is a flag.
  assert.deepEqual(args, ['pos1', '--token', 'x']);
  assert.equal(config.token, '');

  assert.equal(loadConfig({ argv: ['--logcolor=false'], env: { GAMEMESH_LOGCOLOR: 'true' } }).config.logcolor, false);
  assert.equal(loadConfig({ argv: [], env: { GAMEMESH_LOGCOLOR: 'yes' } }).config.logcolor, true);
  assert.equal(loadConfig({ argv: ['--svcindex=1', '--svcindex=2'], env: {} }).config.svcindex, 2, 'the last one wins');
});

test('sizes, lists and addresses of the standard flags', () => {
  const { config } = loadConfig({
    argv: ['--logfilesize', '10k', '--mutemsglog', 'PingACK| HeartBeat,Move', '--sdaddr', 'etcd://10.0.0.1:2379,10.0.0.2:2379', '--listen', '0.0.0.0:8200'],
    env: {},
  });
  assert.equal(config.logfilesize, 10 * 1024);
  assert.deepEqual(config.mutemsglog, ['PingACK', 'HeartBeat', 'Move']);
  assert.equal(config.sdaddr, 'etcd://10.0.0.1:2379,10.0.0.2:2379');
  assert.equal(config.listen, '0.0.0.0:8200');
  assert.equal(loadConfig({ argv: ['--logfilesize=1g'], env: {} }).config.logfilesize, 1024 ** 3);
  assert.equal(loadConfig({ argv: ['--logfilesize=4096'], env: {} }).config.logfilesize, 4096);
  assert.equal(loadConfig({ argv: ['--loglevel', 'gateway.*|debug,warn'], env: {} }).config.loglevel, 'gateway.*|debug,warn');
});

test('flagfile: comments, blank lines, CRLF, quotes, bare booleans, leading dashes', () => {
  const file = flagfile(['# cluster settings', '', '   ', 'sdaddr = 127.0.0.1:9100\r', '  # indented comment', 'logcolor', "wanip='  1.2.3.4 '", '--svcgroup=qa', 'token=a=b#c', ''].join('\n'));
  const { config, sources } = loadConfig({ argv: ['--flagfile', file], env: {} });
  assert.equal(config.sdaddr, '127.0.0.1:9100');
  assert.equal(config.logcolor, true);
  assert.equal(config.wanip, '  1.2.3.4 ');
  assert.equal(config.svcgroup, 'qa');
  assert.equal(config.token, 'a=b#c', 'only the first = splits, and # inside a value is kept');
  assert.equal(sources['sdaddr'], `flagfile ${file}:4`);
  assert.equal(sources['svcgroup'], `flagfile ${file}:8`);
});

test('flagfile errors name the file and the line', () => {
  const unknown = flagfile('sdaddr=127.0.0.1:1\n# ok\nnosuchflag=1\n');
  let err = configError(() => loadConfig({ argv: ['--flagfile', unknown], env: {} }));
  assert.equal(err.flag, 'nosuchflag');
  assert.equal(err.source, `flagfile ${unknown}:3`);
  assert.match(err.message, new RegExp(`${unknown}:3.*unknown flag "nosuchflag"`));

  const malformed = flagfile('\n\nthis is not a flag\n');
  err = configError(() => loadConfig({ argv: ['--flagfile', malformed], env: {} }));
  assert.match(err.message, new RegExp(`${malformed}:3: expected name=value`));

  const noValue = flagfile('svcgroup\n');
  err = configError(() => loadConfig({ argv: ['--flagfile', noValue], env: {} }));
  assert.match(err.message, new RegExp(`${noValue}:1: expected svcgroup=value`));

  const bad = flagfile('# a comment\nsvcindex=abc\n');
  err = configError(() => loadConfig({ argv: ['--flagfile', bad], env: {} }));
  assert.equal(err.flag, 'svcindex');
  assert.equal(err.source, `flagfile ${bad}:2`);
  assert.match(err.message, /"abc" for --svcindex .*expected an integer/);

  const nested = flagfile('flagfile=/etc/other\n');
  err = configError(() => loadConfig({ argv: ['--flagfile', nested], env: {} }));
  assert.equal(err.source, `flagfile ${nested}:1`);

  err = configError(() => loadConfig({ argv: [], env: { GAMEMESH_FLAGFILE: join(dir, 'missing.conf') } }));
  assert.equal(err.flag, 'flagfile');
  assert.equal(err.source, 'env GAMEMESH_FLAGFILE');
  assert.match(err.message, /missing\.conf/);
});

test('application flags: typed values from every source', () => {
  const file = flagfile('motd=hello from file\nzones=1|2\n');
  const flags = {
    'tcp-port': { type: 'number', default: 0, description: 'client TCP port' },
    'max-conn': { type: 'integer', default: 1000, validate: (n: number) => (n > 0 ? undefined : 'must be positive') },
    ws: { type: 'boolean' },
    motd: { type: 'string', default: 'welcome' },
    zones: { type: 'list' },
    'buf-size': { type: 'size', default: 4096 },
  } as const;
  const { config, values, sources } = loadConfig({
    argv: ['--tcp-port', '8201', '--ws', '--flagfile', file],
    env: { GAMEMESH_MAX_CONN: '50', GAMEMESH_BUF_SIZE: '64k' },
    flags,
  });
  assert.equal(config.svcgroup, 'dev');
  assert.deepEqual(values, { 'tcp-port': 8201, 'max-conn': 50, ws: true, motd: 'hello from file', zones: ['1', '2'], 'buf-size': 65536 });
  assert.equal(sources['max-conn'], 'env GAMEMESH_MAX_CONN');
  assert.equal('tcp-port' in config, false, 'app flags stay out of the standard config');

  // The values are typed from the declaration.
  const port: number = values['tcp-port'];
  const ws: boolean = values.ws;
  const zones: string[] = values.zones;
  // @ts-expect-error a number flag is not a string
  const wrong: string = values['tcp-port'];
  assert.deepEqual([port, ws, zones, typeof wrong], [8201, true, ['1', '2'], 'number']);

  const defaults = loadConfig({ argv: [], env: {}, flags });
  assert.deepEqual(defaults.values, { 'tcp-port': 0, 'max-conn': 1000, ws: false, motd: 'welcome', zones: [], 'buf-size': 4096 });

  const err = configError(() => loadConfig({ argv: ['--max-conn=0'], env: {}, flags }));
  assert.match(err.message, /--max-conn \(from flag --max-conn\): must be positive/);
  assert.equal(envName('tcp-port'), 'GAMEMESH_TCP_PORT');
});

test('unknown flags and clashing declarations are ConfigErrors naming the flag', () => {
  let err = configError(() => loadConfig({ argv: ['--svcindex', '1', '--bogus', '2'], env: {} }));
  assert.equal(err.flag, 'bogus');
  assert.match(err.message, /unknown flag --bogus/);
  err = configError(() => loadConfig({ argv: ['--tcp-port=1'], env: {} }));
  assert.equal(err.flag, 'tcp-port');
  err = configError(() => loadConfig({ argv: [], env: {}, flags: { sdaddr: { type: 'string' } } }));
  assert.equal(err.flag, 'sdaddr');
  err = configError(() => loadConfig({ argv: ['--sdaddr'], env: {} }));
  assert.match(err.message, /--sdaddr needs a value/);
  // Unknown GAMEMESH_ variables are not errors: the environment is shared with other programs.
  assert.equal(loadConfig({ argv: [], env: { GAMEMESH_SOMETHING_ELSE: 'x' } }).config.svcindex, 0);
});

test('bad values name the flag and where the value came from', () => {
  const cases: [string[], Record<string, string>, string, RegExp][] = [
    [['--svcindex', 'abc'], {}, 'flag --svcindex', /expected an integer/],
    [['--svcindex', '1.5'], {}, 'flag --svcindex', /expected an integer/],
    [[], { GAMEMESH_SVCINDEX: 'x1' }, 'env GAMEMESH_SVCINDEX', /expected an integer/],
    [['--svcindex=-1'], {}, 'flag --svcindex', /expected 0\.\.1023/],
    [['--cluster=99999'], {}, 'flag --cluster', /expected 0\.\.16383/],
    [['--logcolor=maybe'], {}, 'flag --logcolor', /expected true or false/],
    [[], { GAMEMESH_LOGFILESIZE: '10q' }, 'env GAMEMESH_LOGFILESIZE', /expected a size/],
    [['--loglevel', 'verbose'], {}, 'flag --loglevel', /bad log level "verbose"/],
    [['--loglevel', 'gate(|debug'], {}, 'flag --loglevel', /bad log level rule/],
    [['--listen', 'nohostport'], {}, 'flag --listen', /expected host:port/],
    [['--listen', '127.0.0.1:70000'], {}, 'flag --listen', /expected host:port/],
    [['--sdaddr', 'localhost'], {}, 'flag --sdaddr', /expected host:port or etcd:/],
    [['--svcgroup', 'a@b'], {}, 'flag --svcgroup', /without spaces/],
  ];
  for (const [argv, env, source, why] of cases) {
    const err = configError(() => loadConfig({ argv, env }));
    const flag = source.replace(/^flag --|^env GAMEMESH_/, '').toLowerCase();
    assert.equal(err.flag, flag, `${argv.join(' ')} ${JSON.stringify(env)}`);
    assert.equal(err.source, source);
    assert.match(err.message, why);
    assert.ok(err.message.includes(`--${flag}`) && err.message.includes(source), err.message);
  }
});

test('--help is reported, and helpText lists every flag with its default and variable', () => {
  const flags = { 'tcp-port': { type: 'number', default: 8201, description: 'client TCP port' } } as const;
  assert.equal(loadConfig({ argv: ['--help'], env: {}, flags }).help, true);
  assert.equal(loadConfig({ argv: ['-h'], env: {} }).help, true);
  const withBadEnv = loadConfig({ argv: ['--svcindex=abc', '--help'], env: { GAMEMESH_CLUSTER: 'x' } });
  assert.equal(withBadEnv.help, true, 'help works whatever the values say');
  assert.equal(withBadEnv.config.svcindex, 0);
  const text = helpText({ program: 'gateway', summary: 'The client gateway.', flags, defaults: { listen: '0.0.0.0:8200' } });
  assert.match(text, /^Usage: gateway \[flags\]\nThe client gateway\.\n/);
  for (const name of [...Object.keys(STANDARD_FLAGS), 'tcp-port']) {
    assert.match(text, new RegExp(`^  --${name}\\b.*env ${envName(name)}\\)$`, 'm'), name);
  }
  assert.match(text, /--tcp-port <number> +client TCP port \(default "8201"/);
  assert.match(text, /--listen <string> .*\(default "0\.0\.0\.0:8200"/);
  assert.match(text, /--logcolor +pretty/);
});

test('a service can change the standard defaults', () => {
  const { config } = loadConfig({ argv: [], env: {}, defaults: { listen: '0.0.0.0:8200', svcgroup: 'game' } });
  assert.equal(config.listen, '0.0.0.0:8200');
  assert.equal(config.svcgroup, 'game');
  assert.equal(loadConfig({ argv: ['--listen=:9000'], env: {}, defaults: { listen: '0.0.0.0:8200' } }).config.listen, ':9000');
});
