#!/usr/bin/env node
// The rotor CLI, compiled: runs dist/ (`npm run build`) with plain node, no TypeScript loader.
// A source checkout that was never built falls back to the sources through tsx (a devDependency,
// absent from the image); bin/rotor-dev.mjs always runs the sources, which is what tests spawn so
// they never exercise a stale dist/.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
let runCli;
if (existsSync(compiled)) {
  ({ runCli } = await import(compiled.href));
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('rotor: dist/ is missing and tsx is not installed: run `npm ci && npm run build`\n');
    process.exit(3);
  }
  ({ runCli } = await import('../src/cli/main.ts'));
}
process.exitCode = await runCli(process.argv.slice(2));
