/**
 * No two test files rotate the same identity: its workflow ID would collide on the shared Temporal
 * server whenever the two files run at once (test/helpers/test-identities.ts).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { identitiesInSeveralFiles, identityLiteralsIn } from '../helpers/test-identities';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('identities the test files rotate', () => {
  it('each belongs to one file', () => {
    expect(identitiesInSeveralFiles(ROOT, 'test')).toEqual({});
  });

  it('the checker finds the names given to the rotation env', () => {
    const found = identityLiteralsIn(
      [
        "const signer = await env.initIdentity('checker-fixture-a');",
        "await identityWithManifests('checker-fixture-b');",
        "const handle = await env.start(\n  'checker-fixture-a', 'scheduled');",
        "await client.workflow.start('rotationWorkflow', {});",
        'await env.start(IDENTITY, "personnel");',
      ].join('\n'),
    );
    expect(found).toEqual(['checker-fixture-a', 'checker-fixture-b']);
  });
});
