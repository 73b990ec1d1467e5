/**
 * Determinism across changes: histories of real rotations, recorded earlier and committed under
 * test/fixtures/histories, must replay against the current workflow code. A change that would
 * break rotations already running (a reordered activity, a new timer) fails here; make it with
 * `patched()` or re-record deliberately:
 *   ROTOR_RECORD_HISTORIES=test/fixtures/histories npx vitest run test/rotation
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../helpers/temporal';

const DIR = join(import.meta.dirname, '../fixtures/histories');

describe('recorded rotation histories', () => {
  it('replay against the current workflow code', async () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
    // The scheduled, paused, rolled-back, refused, compromise and killed-worker paths at least.
    expect(files.length).toBeGreaterThanOrEqual(6);
    const histories = files.map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(DIR, f), 'utf8'))),
    }));
    const replayed: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: await workflowBundle() },
      histories,
    )) {
      expect(result.error, `${result.workflowId}: ${result.error?.message}`).toBeUndefined();
      replayed.push(result.workflowId);
    }
    expect(replayed.sort()).toEqual(histories.map((h) => h.workflowId).sort());
  });
});
