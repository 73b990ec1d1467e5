/**
 * The compiled build (`npm run build`, scripts/build.mjs): production runs dist/ with plain node,
 * so the build must compile, every emitted import must resolve under Node's own ESM loader, the
 * CLI must start without tsx, nothing in dist/ may need a devDependency, and the workflow bundle
 * built ahead of time must replay a committed rotation history.
 * Built into .cache/ (ignored by git) so a developer's dist/ is left alone.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, '.cache/build-test/dist');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // No tsx anywhere: not in the arguments, not through NODE_OPTIONS.
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    execFile(process.execPath, args, { cwd: ROOT, env, timeout: 390_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function* jsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(path);
    else if (entry.name.endsWith('.js')) yield path;
  }
}

describe('npm run build', () => {
  let build: { code: number; stdout: string; stderr: string };
  beforeAll(async () => {
    // Without a second type check: `npm test` runs `npm run typecheck` over the same sources.
    build = await run(['scripts/build.mjs', '--out', '.cache/build-test/dist', '--no-check']);
  }, 400_000);
  afterAll(() => rmSync(join(ROOT, '.cache/build-test'), { recursive: true, force: true }));

  it('compiles src/ and starts the CLI with plain node', async () => {
    expect(build.code, build.stderr).toBe(0);
    const help = await run([join(OUT, 'cli/main.js'), '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: rotor /);
    expect(help.stdout).toContain('rotate');
    // A command that fails on bad usage still exits with the CLI's own code, not a loader error.
    const bad = await run([join(OUT, 'cli/main.js'), 'rotate', 'start', '--trigger', 'nonsense']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|ERR_UNSUPPORTED/);
  });

  it('needs only runtime dependencies: no tsx, no devDependency', () => {
    expect(build.code, build.stderr).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
    const allowed = new Set(Object.keys(pkg.dependencies));
    const builtins = new Set(builtinModules);
    const bare = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'".][^'"]*)['"]/g;
    const needs = new Map<string, string>();
    for (const file of jsFiles(OUT)) {
      if (file.endsWith('workflow-bundle.js')) continue; // self-contained by construction
      for (const m of readFileSync(file, 'utf8').matchAll(bare)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        needs.set(name, file.slice(OUT.length + 1));
      }
    }
    expect(needs.size).toBeGreaterThan(3);
    for (const [name, file] of needs) expect(allowed.has(name), `${file} imports ${name}`).toBe(true);
  });

  it('bundles the workflow code ahead of time, and that bundle replays a committed history', async () => {
    expect(build.code, build.stderr).toBe(0);
    const file = join(ROOT, 'test/fixtures/histories/rotation-default.json');
    const history = historyFromJSON(JSON.parse(readFileSync(file, 'utf8')));
    const results = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: join(OUT, 'workflow-bundle.js') } },
      [{ workflowId: 'rotation-default', history }],
    )) {
      results.push(result);
    }
    expect(results).toHaveLength(1);
    expect(results[0]!.error, results[0]!.error?.message).toBeUndefined();
  });
});
