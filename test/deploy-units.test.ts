/**
 * The systemd units we ship (deploy/systemd): the unit runs $GAMEMESH_RUN
 * with flags from GAMEMESH_* variables, which the config loader would
 * silently ignore if misspelt. So each example env file must name a script
 * that exists and only variables that its program's --help lists.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/proc.js';

const DIR = path.join(ROOT, 'deploy', 'systemd');

function parseEnv(file: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1] as string, m[2] as string);
  }
  return vars;
}

test('the unit runs GAMEMESH_RUN with node, loads the instance env file and stops gracefully', () => {
  const unit = fs.readFileSync(path.join(DIR, 'gamemesh@.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/node \$GAMEMESH_RUN$/m);
  assert.match(unit, /^EnvironmentFile=\/etc\/gamemesh\/%i\.env$/m);
  assert.match(unit, /^KillSignal=SIGTERM$/m);
  assert.match(unit, /^Restart=always$/m);
});

for (const name of fs.readdirSync(path.join(DIR, 'env')).filter((f) => f.endsWith('.env'))) {
  test(`deploy/systemd/env/${name}: its program exists and knows every variable`, () => {
    const vars = parseEnv(path.join(DIR, 'env', name));
    const run = vars.get('GAMEMESH_RUN');
    assert.ok(run, 'GAMEMESH_RUN is set');
    const [script, ...args] = run.split(/\s+/) as [string, ...string[]];
    assert.ok(fs.existsSync(path.join(ROOT, script)), `${script} exists (after npm run build)`);
    const help = execFileSync(process.execPath, [path.join(ROOT, script), ...args, '--help'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env['PATH'] } });
    for (const key of vars.keys()) {
      if (key === 'GAMEMESH_RUN') continue;
      assert.ok(help.includes(`env ${key})`), `${key} is a flag of ${run} (see its --help)`);
    }
  });
}
