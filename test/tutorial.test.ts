/**
 * docs/tutorial.md, run as written: its code blocks become one bash script,
 * in order.
 *   ```sh run            the lines run as they are (`cd` and `export` carry on)
 *   ```sh run retry      each line retried, once a second for 60 s, until it succeeds
 *   ```sh background     each line started and left running (its own terminal, in the tutorial)
 *   ```sh cleanup        run at the end, whatever happened
 *   ```x file=P          the block is the new file P
 *   ```x append=P        appended to P
 *   ```x replace=P line="L"       the line L of P becomes the block
 *   ```x insert=P before="M"      the block goes before the line starting with M
 *   ```sh (or anything else)      shown only
 * What a user has and this machine has not is stood in for, and nothing
 * else: `npx gamemesh init` runs the bin of this checkout's packed tarball
 * (with it as the dependency), `npm install` installs offline from the npm
 * cache (helpers/offline-lock.ts), and the namespaces get names of this run
 * so that parallel runs do not meet.
 *
 * The namespaces need root, ip (iproute2) and etcd: without them the test
 * is skipped, or fails when CI is set (.ci/run installs them).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, tempDir } from './helpers/proc.js';
import { cleanEnv, packGamemesh } from './helpers/scaffold.js';

const TUTORIAL = path.join(ROOT, 'docs', 'tutorial.md');

export interface Block {
  readonly lang: string;
  readonly attrs: Readonly<Record<string, string>>;
  /** The first bare words of the info string after the language: run, retry, background, cleanup. */
  readonly flags: readonly string[];
  readonly body: string;
}

/** The fenced code blocks of a Markdown text, with their info strings parsed. */
export function codeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const re = /^```(\S*)([^\n]*)\n([\s\S]*?)^```$/gm;
  for (const m of markdown.matchAll(re)) {
    const attrs: Record<string, string> = {};
    const flags: string[] = [];
    for (const a of (m[2] as string).matchAll(/(\w+)=(?:"([^"]*)"|(\S+))|(\S+)/g)) {
      if (a[4] !== undefined) flags.push(a[4]);
      else attrs[a[1] as string] = a[2] ?? (a[3] as string);
    }
    blocks.push({ lang: m[1] as string, attrs, flags, body: m[3] as string });
  }
  return blocks;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const q = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

/** Edits files for the replace= and insert= blocks: node EDIT.mjs replace|insert FILE B64(anchor) B64(text). */
const EDIT = `import fs from 'node:fs';
const [mode, file, anchor64, text64] = process.argv.slice(2);
const anchor = Buffer.from(anchor64, 'base64').toString();
const text = Buffer.from(text64, 'base64').toString();
const lines = fs.readFileSync(file, 'utf8').split('\\n');
const at = lines.findIndex((l) => (mode === 'replace' ? l === anchor : l.startsWith(anchor)));
if (at < 0) { console.error('tutorial: ' + file + ' has no line ' + JSON.stringify(anchor)); process.exit(1); }
const add = text.replace(/\\n$/, '').split('\\n');
lines.splice(at, mode === 'replace' ? 1 : 0, ...add);
fs.writeFileSync(file, lines.join('\\n'));
`;

/** The tutorial as one bash script. */
export function tutorialScript(blocks: readonly Block[], rename: (text: string) => string): string {
  const out: string[] = [];
  const cleanup: string[] = [];
  let bg = 0;
  for (const block of blocks) {
    const { attrs, flags } = block;
    const lines = () => rename(block.body).split('\n').filter((l) => l.trim() !== '');
    if (attrs['file'] !== undefined) {
      out.push(`mkdir -p "$(dirname ${q(attrs['file'])})"`, `printf %s ${q(b64(block.body))} | base64 -d > ${q(attrs['file'])}`);
    } else if (attrs['append'] !== undefined) {
      out.push(`printf %s ${q(b64(block.body))} | base64 -d >> ${q(attrs['append'])}`);
    } else if (attrs['replace'] !== undefined) {
      out.push(`node "$GM_EDIT" replace ${q(attrs['replace'])} ${q(b64(attrs['line'] ?? ''))} ${q(b64(block.body))}`);
    } else if (attrs['insert'] !== undefined) {
      out.push(`node "$GM_EDIT" insert ${q(attrs['insert'])} ${q(b64(attrs['before'] ?? ''))} ${q(b64(block.body))}`);
    } else if (block.lang !== 'sh') {
      continue;
    } else if (flags[0] === 'run' && flags.includes('retry')) {
      for (const line of lines()) out.push(`echo "+ "${q(line)}`, `for i in $(seq 60); do if ${line}; then break; fi; if [ "$i" = 60 ]; then echo "tutorial: gave up on: "${q(line)} >&2; exit 1; fi; sleep 1; done`);
    } else if (flags[0] === 'run') {
      for (const line of lines()) out.push(`echo "+ "${q(line)}`, line);
    } else if (flags[0] === 'background') {
      for (const line of lines()) {
        bg++;
        // Its own session (process group), so the cleanup reaches whatever it started.
        out.push(`echo "+ "${q(line)}" &"`, `setsid bash -c ${q(`exec ${line}`)} > "$GM_LOGS/background-${bg}.log" 2>&1 &`, 'GM_PIDS+=($!)');
      }
    } else if (flags[0] === 'cleanup') {
      cleanup.push(...lines());
    }
  }
  return [
    'set -euo pipefail',
    'GM_PIDS=()',
    'gm_cleanup() {',
    '  set +e',
    '  for p in "${GM_PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done',
    '  sleep 1',
    '  for p in "${GM_PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done',
    '  for ns in $GM_NETNS; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL; done',
    ...cleanup.map((l) => `  ${l}`),
    '  for f in "$GM_LOGS"/background-*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done',
    '}',
    'trap gm_cleanup EXIT',
    // The stand-ins for the registry (see the header).
    'npx() { if [ "${1:-}" = gamemesh ] && [ "${2:-}" = init ]; then shift 2; node "$GM_BIN" init "$@" --gamemesh "file:$GM_TGZ"; else command npx "$@"; fi; }',
    'npm() { if [ "${1:-}" = install ] && [ $# = 1 ]; then node "$GM_LOCK" "$PWD" && command npm install --offline; else command npm "$@"; fi; }',
    ...out,
    '',
  ].join('\n');
}

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!fs.existsSync('/usr/bin/etcd')) return '/usr/bin/etcd is missing: apt-get install etcd-server (.ci/run installs it)';
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (fs.existsSync(path.join(dir, 'ip'))) return undefined;
  return 'ip (iproute2) is missing';
}

test('the tutorial parses into the steps it describes', () => {
  const blocks = codeBlocks(fs.readFileSync(TUTORIAL, 'utf8'));
  const script = tutorialScript(blocks, (s) => s);
  for (const expected of ['npx gamemesh init my-game', 'npm test', 'ip netns add gm-a', 'GAMEMESH_SDADDR=etcd://198.18.0.1:2379', 'setsid bash -c', '--send game.HelloReq', 'base64 -d >> ']) {
    assert.ok(script.includes(expected), `the script has ${expected}`);
  }
  assert.equal(blocks.filter((b) => b.flags[0] === 'background').length, 2);
  assert.deepEqual(codeBlocks('```ts insert=a.ts before="  // x y"\nz\n```\n')[0]?.attrs, { insert: 'a.ts', before: '  // x y' });
});

const why = missing();
test('docs/tutorial.md, run as written', { skip: why && !process.env['CI'] ? why : false, timeout: 300_000 }, async (t) => {
  if (why) assert.fail(why);
  const tmp = fs.realpathSync(tempDir(t, 'gamemesh-tutorial-'));
  const { tarball, bin } = await packGamemesh(tmp);
  const logs = path.join(tmp, 'logs');
  fs.mkdirSync(logs);
  fs.writeFileSync(path.join(tmp, 'edit.mjs'), EDIT);
  // The offline lockfile for the project npm install runs in.
  fs.writeFileSync(
    path.join(tmp, 'lock.mjs'),
    `import { writeOfflineLock } from ${JSON.stringify(path.join(ROOT, 'dist', 'test', 'helpers', 'offline-lock.js'))};\nwriteOfflineLock(${JSON.stringify(ROOT)}, process.argv[2], ${JSON.stringify(tarball)});\n`,
  );
  const tag = `gt${process.pid % 100_000}`;
  const [nsA, nsB] = [`${tag}a`, `${tag}b`];
  const rename = (text: string) => text.replace(/\bgm-a/g, nsA).replace(/\bgm-b/g, nsB);
  const script = tutorialScript(codeBlocks(fs.readFileSync(TUTORIAL, 'utf8')), rename);
  fs.writeFileSync(path.join(tmp, 'tutorial.sh'), script);

  const env = { ...cleanEnv(), GM_BIN: bin, GM_TGZ: tarball, GM_EDIT: path.join(tmp, 'edit.mjs'), GM_LOCK: path.join(tmp, 'lock.mjs'), GM_LOGS: logs, GM_NETNS: `${nsA} ${nsB}` };
  const child = spawn('bash', [path.join(tmp, 'tutorial.sh')], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.after(() => {
    // Whatever the script left (it cleans up after itself; this is for a script killed by the timeout).
    for (const ns of [nsA, nsB]) spawn('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });
  assert.equal(code, 0, output.slice(-6000));
  // Both tests pass, the chat's too, and a player on machine B is served by the game on machine A.
  assert.match(output, /# pass 3\n# fail 0/, output.slice(-3000));
  assert.match(output, /^\{"name":"alice"\}$/m);
  assert.equal(fs.readdirSync('/var/run/netns').filter((n) => n === nsA || n === nsB).length, 0, 'the namespaces are gone');
});
