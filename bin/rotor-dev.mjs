#!/usr/bin/env node
// The rotor CLI from its TypeScript sources through tsx (a devDependency): what the tests spawn,
// so they always run the code as it is, never a stale build. Production runs bin/rotor.mjs.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2));
