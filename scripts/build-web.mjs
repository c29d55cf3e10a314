#!/usr/bin/env node
/**
 * Bundles the browser pages:
 * - the demo's web page, demo/web-src/app.ts and the browser-safe client SDK
 *   it imports, into demo/web/app.js (+ app.js.map), which the login service
 *   serves with the rest of demo/web;
 * - the dashboard page, src/dashboard/web/app.ts, into dist/src/dashboard/web/
 *   with its index.html and style.css, which `gamemesh dashboard` serves;
 * - the client SDK itself, src/client/index.ts, into dist/browser/gamemesh-client.js:
 *   an ES module `gamemesh login` serves at /gamemesh/client.js, so a page
 *   without a bundler imports it (the scaffold's page does, through an import map).
 * The package's prepare script (npm install) runs it after tsc, and so does
 * npm test. esbuild only strips the types: `tsc -p demo/web-src/tsconfig.json`
 * and `tsc -p src/dashboard/web/tsconfig.json` (in npm test) are the type checks.
 *
 * The bundle has to run in a browser, so the build fails rather than ship
 * Node code: esbuild refuses Node's built-in modules on platform 'browser'
 * (unless a package's own "browser" field maps them away), and npm packages
 * are accepted only from BROWSER_PACKAGES, since a Node-only package can
 * still bundle quietly (ws ships a browser stub that throws when used).
 */
import { build } from 'esbuild';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PAGES = [
  { entry: 'demo/web-src/app.ts', outfile: 'demo/web/app.js', tsconfig: 'demo/web-src/tsconfig.json', copy: [] },
  { entry: 'src/client/index.ts', outfile: 'dist/browser/gamemesh-client.js', tsconfig: 'demo/web-src/tsconfig.json', copy: [] },
  { entry: 'src/dashboard/web/app.ts', outfile: 'dist/src/dashboard/web/app.js', tsconfig: 'src/dashboard/web/tsconfig.json', copy: ['src/dashboard/web/index.html', 'src/dashboard/web/style.css'] },
];

/** npm packages known to work in browsers: the SDK needs protobufjs (src/wire/message-type.ts), which needs long. */
const BROWSER_PACKAGES = [/^protobufjs$/, /^@protobufjs\//, /^long$/];

/** The npm package a bundled file belongs to, or undefined for the project's own files. */
function packageOf(file) {
  const parts = file.split('/');
  const i = parts.lastIndexOf('node_modules');
  if (i < 0) return undefined;
  const first = parts[i + 1] ?? '';
  return first.startsWith('@') ? `${first}/${parts[i + 2] ?? ''}` : first;
}

async function main() {
  for (const page of PAGES) {
    const code = await buildPage(page);
    if (code !== 0) return code;
  }
  return 0;
}

async function buildPage({ entry: ENTRY, outfile: OUTFILE, tsconfig, copy }) {
  let result;
  try {
    result = await build({
      absWorkingDir: ROOT,
      entryPoints: [ENTRY],
      outfile: OUTFILE,
      tsconfig,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      minify: true,
      sourcemap: 'linked',
      metafile: true,
      // Written below, only once the inputs have been checked.
      write: false,
      logLevel: 'silent',
    });
  } catch (err) {
    // esbuild's BuildFailure carries its messages; print them as esbuild would.
    const errors = err && typeof err === 'object' && 'errors' in err ? err.errors : [];
    for (const e of errors) {
      const where = e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : '';
      console.error(`build-web: ${where}${e.text}${e.notes.map((n) => `\n  ${n.text}`).join('')}`);
    }
    if (errors.length === 0) console.error(`build-web: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  const inputs = result.metafile.inputs;
  const packages = new Set();
  const refused = [];
  for (const file of Object.keys(inputs)) {
    const pkg = packageOf(file);
    if (pkg === undefined) continue;
    packages.add(pkg);
    if (!BROWSER_PACKAGES.some((re) => re.test(pkg))) {
      const importers = Object.keys(inputs).filter((other) => inputs[other].imports.some((imp) => imp.path === file));
      refused.push(`${pkg} (${file}, imported by ${importers.join(', ') || '?'})`);
    }
  }
  if (refused.length > 0) {
    console.error(`build-web: ${OUTFILE} would bundle packages not known to be browser-safe:\n  ${refused.join('\n  ')}\n` +
      'The page may only import browser-safe code (src/client, demo/gen). If such a package does run in browsers, add it to BROWSER_PACKAGES in scripts/build-web.mjs.');
    return 1;
  }

  await mkdir(path.dirname(path.join(ROOT, OUTFILE)), { recursive: true });
  for (const out of result.outputFiles) await writeFile(out.path, out.contents);
  for (const file of copy) await copyFile(path.join(ROOT, file), path.join(ROOT, path.dirname(OUTFILE), path.basename(file)));
  const js = result.outputFiles.find((o) => o.path.endsWith('.js'));
  const kb = ((js?.contents.length ?? 0) / 1024).toFixed(1);
  console.log(`build-web: ${OUTFILE} ${kb} KiB (+ .map); packages: ${[...packages].sort().join(', ') || 'none'}`);
  return 0;
}

process.exitCode = await main();
