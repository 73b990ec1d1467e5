/**
 * docs/RUNBOOK.md maps the runbook (docs/runbook-key-rotation.txt) to code and tests: every step
 * of the runbook has a row, and every file it names exists.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const mapping = readFileSync(join(ROOT, 'docs/RUNBOOK.md'), 'utf8');
const runbook = readFileSync(join(ROOT, 'docs/runbook-key-rotation.txt'), 'utf8');

describe('docs/RUNBOOK.md', () => {
  it('has a row for every step of the runbook', () => {
    const steps = [...runbook.matchAll(/^Step (\d+) - /gm)].map((m) => m[1]);
    expect(steps.length).toBeGreaterThanOrEqual(6);
    for (const n of steps) expect(mapping, `Step ${n}`).toMatch(new RegExp(`\\| Step ${n} — `));
    for (const section of ['Pre-rotation checklist', 'Rollback procedure', 'Monitoring during rotation'])
      expect(mapping).toContain(section);
  });

  it('names only files that exist', () => {
    const paths = [...mapping.matchAll(/`((?:src|test|bench|docs)\/[^`…*]+)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) expect(existsSync(join(ROOT, path)), path).toBe(true);
  });
});
