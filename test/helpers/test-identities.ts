/**
 * The identities test files rotate through rotation-env. Each becomes the workflow ID
 * rotation/<identity> on the Temporal server that all files of a vitest project share, so the same
 * name in two files makes whichever starts second fail with "Workflow execution already started",
 * depending only on timing (a CI run at 2d21aa4 failed so).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Literal identity names passed to initIdentity, identityWithManifests or env.start. */
export function identityLiteralsIn(source: string): string[] {
  const names = new Set<string>();
  for (const m of source.matchAll(/\b(?:initIdentity|identityWithManifests|env\.start)\(\s*'([^']+)'/g))
    names.add(m[1]!);
  return [...names];
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : testFiles(path);
    return e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Each name used by more than one test file under root/dir, with the files that use it. */
export function identitiesInSeveralFiles(root: string, dir: string): Record<string, string[]> {
  const users = new Map<string, string[]>();
  for (const file of testFiles(join(root, dir)))
    for (const name of identityLiteralsIn(readFileSync(file, 'utf8')))
      users.set(name, [...(users.get(name) ?? []), relative(root, file)]);
  return Object.fromEntries([...users].filter(([, files]) => files.length > 1));
}
