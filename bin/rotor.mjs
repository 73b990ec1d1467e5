#!/usr/bin/env node
// The rotor CLI, compiled: runs dist/ (`npm run build`) with plain node, no TypeScript loader.
// From a source checkout without a build, bin/rotor-dev.mjs runs src/ through tsx instead.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'rotor: dist/ is missing: run `npm run build` first (or `node bin/rotor-dev.mjs` to run the sources)\n',
  );
  process.exit(3);
}
const { runCli } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2));
