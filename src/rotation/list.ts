/**
 * Running and recent rotations: Temporal's visibility (with the live phase of running ones) merged
 * with the rotations table, so either alone still answers.
 */
import { errorMessage, RotorError } from '../errors';
import type { Pool } from '../store/db';
import { type RotationRecord, listRotations as storedRotations } from '../store/rotations';
import { rotationWorkflowId, statusQuery } from '../workflows/rotation-api';
import { quote, ROTATION_PREFIX, visibilityQuery } from './status';
import { needingWorker, type RotationTemporal } from './temporal';

export interface RotationListEntry {
  workflowId: string;
  runId: string;
  identity: string;
  trigger: string | null;
  /** The workflow's own phase: live for running rotations, else from the rotations table. */
  phase: string | null;
  /** Temporal's execution status (RUNNING, COMPLETED, …), when visibility knows the run. */
  status: string | null;
  startedAt: string | null;
  endedAt: string | null;
  outcome: string | null;
}

/** Where a listing reads from; each is opened only for the listing and may fail on its own. */
export interface ListSources {
  withTemporal<T>(fn: (t: RotationTemporal) => Promise<T>): Promise<T>;
  withPool<T>(fn: (pool: Pool) => Promise<T>): Promise<T>;
}

/**
 * Newest first, at most `limit`. When one source fails, `onPartial` is told which and the other's
 * rows are returned; when both fail, RotorError `ROTATION_LIST`.
 */
export async function listRotationRuns(
  opts: { identity?: string; limit: number },
  sources: ListSources,
  onPartial: (problem: string) => void = () => {},
): Promise<RotationListEntry[]> {
  const byRun = new Map<string, RotationListEntry>();
  const problems: string[] = [];

  try {
    await sources.withTemporal(async (t) => {
      const extra = opts.identity ? `WorkflowId='${quote(rotationWorkflowId(opts.identity))}'` : undefined;
      for await (const w of t.client.workflow.list({ query: visibilityQuery(t, extra) })) {
        const memo = (w.memo ?? {}) as { identity?: string; trigger?: string };
        byRun.set(w.runId, {
          workflowId: w.workflowId,
          runId: w.runId,
          identity: memo.identity ?? w.workflowId.slice(ROTATION_PREFIX.length),
          trigger: memo.trigger ?? null,
          phase: null,
          status: w.status.name,
          startedAt: w.startTime.toISOString(),
          endedAt: w.closeTime?.toISOString() ?? null,
          outcome: null,
        });
        if (byRun.size >= opts.limit) break;
      }
      // Running rotations answer with their live phase; a missing worker only leaves it blank.
      for (const e of byRun.values()) {
        if (e.status !== 'RUNNING') continue;
        try {
          const s = await needingWorker(t, 'the status query', 5, () =>
            t.client.workflow.getHandle(e.workflowId, e.runId).query(statusQuery),
          );
          e.phase = s.paused ? `${s.phase} (paused)` : s.phase;
          e.trigger = s.trigger;
        } catch {
          // Shown from the rotations table below, or left blank.
        }
      }
    });
  } catch (err) {
    problems.push(`Temporal: ${errorMessage(err)}`);
  }

  try {
    await sources.withPool(async (pool) => {
      for (const r of await storedRotations(pool, { identity: opts.identity, limit: opts.limit }))
        merge(byRun, r);
    });
  } catch (err) {
    problems.push(`rotations table: ${errorMessage(err)}`);
  }

  if (problems.length === 2)
    throw new RotorError(`cannot list rotations: ${problems.join('; ')}`, 'ROTATION_LIST', 3);
  for (const p of problems) onPartial(p);
  return [...byRun.values()]
    .sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''))
    .slice(0, opts.limit);
}

function merge(byRun: Map<string, RotationListEntry>, r: RotationRecord): void {
  const known = byRun.get(r.runId);
  if (!known) {
    byRun.set(r.runId, {
      workflowId: r.workflowId,
      runId: r.runId,
      identity: r.identity,
      trigger: r.trigger,
      phase: r.phase,
      status: null,
      startedAt: r.startedAt.toISOString(),
      endedAt: r.endedAt?.toISOString() ?? null,
      outcome: r.outcome,
    });
    return;
  }
  known.trigger ??= r.trigger;
  known.phase ??= r.phase;
  known.outcome ??= r.outcome;
  known.endedAt ??= r.endedAt?.toISOString() ?? null;
}
