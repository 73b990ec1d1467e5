#!/usr/bin/env node
/**
 * `npm run build`: compiles src/ to dist/ with tsc (tsconfig.build.json), so production runs plain
 * `node` with no TypeScript loader, then
 *  1. completes relative import specifiers: the sources import `./x` (TypeScript's Bundler
 *     resolution, which tsx and Vitest follow), but Node's ESM loader needs `./x.js` or
 *     `./x/index.js`; each specifier is resolved against the emitted files, and one that
 *     resolves to nothing fails the build;
 *  2. copies the files src/ reads at run time (SQL migrations);
 *  3. bundles the workflow code once (dist/workflow-bundle.js), which the worker loads instead of
 *     bundling src/workflows with webpack at every start.
 * `--out DIR` builds elsewhere inside the repository (test/build.test.ts), so node_modules resolves;
 * `--no-check` emits without type checking (tsc --noCheck), for the test: `npm test` has just
 * type-checked the same sources.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function step(message) {
  process.stderr.write(`build: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`build: ${message}\n`);
  process.exit(1);
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outAt = process.argv.indexOf('--out');
const DIST = resolve(ROOT, outAt >= 0 ? (process.argv[outAt + 1] ?? fail('--out needs a folder')) : 'dist');
if (!DIST.startsWith(`${ROOT}/`))
  fail(`--out ${DIST} is outside the repository: node_modules would not resolve`);
const require = createRequire(import.meta.url);

rmSync(DIST, { recursive: true, force: true });

const tscArgs = ['-p', 'tsconfig.build.json', '--outDir', DIST];
if (process.argv.includes('--no-check')) tscArgs.push('--noCheck');
step(`tsc ${tscArgs.join(' ')}`);
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), ...tscArgs], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (tsc.status !== 0) fail(`tsc failed (exit ${tsc.status ?? tsc.signal})`);

function* jsFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(path);
    else if (entry.name.endsWith('.js')) yield path;
  }
}

// `from './x'`, `import './x'`, `import('./x')`: the three forms tsc emits for relative modules.
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*)\2/g;

function completeSpecifier(file, specifier) {
  if (/\.(m?js|json)$/.test(specifier)) return specifier;
  const base = resolve(dirname(file), specifier);
  if (existsSync(`${base}.js`)) return `${specifier}.js`;
  if (existsSync(join(base, 'index.js'))) return `${specifier}/index.js`;
  fail(`${relative(ROOT, file)}: import '${specifier}' resolves to no emitted module`);
}

let rewritten = 0;
for (const file of jsFiles(DIST)) {
  const text = readFileSync(file, 'utf8');
  const next = text.replace(SPECIFIER, (_all, lead, quote, specifier) => {
    const full = completeSpecifier(file, specifier);
    if (full !== specifier) rewritten++;
    return `${lead}${quote}${full}${quote}`;
  });
  if (next !== text) writeFileSync(file, next);
}
step(`completed ${rewritten} relative import specifier(s)`);

step('copy src/store/migrations');
cpSync(join(ROOT, 'src/store/migrations'), join(DIST, 'store/migrations'), {
  recursive: true,
  filter: (path) => statSync(path).isDirectory() || path.endsWith('.sql'),
});

step('bundle the workflow code');
const { bundleWorkflowCode } = await import('@temporalio/worker');
const bundle = await bundleWorkflowCode({
  workflowsPath: join(DIST, 'workflows/index.js'),
  logger: {
    // The bundler reports at info level what it packs; only problems are worth a line here.
    trace() {},
    debug() {},
    info() {},
    warn: (message) => step(`workflow bundler: ${message}`),
    error: (message) => step(`workflow bundler: ${message}`),
    log() {},
  },
});
writeFileSync(join(DIST, 'workflow-bundle.js'), bundle.code);
step(`${relative(ROOT, DIST)}/ ready (workflow bundle ${(bundle.code.length / 1024).toFixed(0)} KiB)`);
