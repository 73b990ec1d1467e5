/**
 * The rotations table: a row per workflow run, kept by the workflow's bookkeeping activity.
 */
import type { Queryable } from './queryable';

export interface RotationRecord {
  workflowId: string;
  runId: string;
  identity: string;
  trigger: string;
  phase: string;
  oldKeyId: string | null;
  newKeyId: string | null;
  outcome: string | null;
  startedAt: Date;
  updatedAt: Date;
  endedAt: Date | null;
}

interface Row {
  workflow_id: string;
  run_id: string;
  identity: string;
  trigger: string;
  phase: string;
  old_key_id: string | null;
  new_key_id: string | null;
  outcome: string | null;
  started_at: Date;
  updated_at: Date;
  ended_at: Date | null;
}

function fromRow(r: Row): RotationRecord {
  return {
    workflowId: r.workflow_id,
    runId: r.run_id,
    identity: r.identity,
    trigger: r.trigger,
    phase: r.phase,
    oldKeyId: r.old_key_id,
    newKeyId: r.new_key_id,
    outcome: r.outcome,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    endedAt: r.ended_at,
  };
}

export interface RotationUpsert {
  workflowId: string;
  runId: string;
  identity: string;
  trigger: string;
  phase: string;
  oldKeyId?: string | null;
  newKeyId?: string | null;
  outcome?: string | null;
  ended: boolean;
}

export async function upsertRotation(q: Queryable, r: RotationUpsert): Promise<void> {
  await q.query(
    `INSERT INTO rotations (workflow_id, run_id, identity, trigger, phase, old_key_id, new_key_id, outcome, ended_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9 THEN now() END)
     ON CONFLICT (run_id) DO UPDATE SET
       phase = EXCLUDED.phase,
       old_key_id = COALESCE(EXCLUDED.old_key_id, rotations.old_key_id),
       new_key_id = COALESCE(EXCLUDED.new_key_id, rotations.new_key_id),
       outcome = COALESCE(EXCLUDED.outcome, rotations.outcome),
       updated_at = now(),
       ended_at = COALESCE(rotations.ended_at, EXCLUDED.ended_at)`,
    [
      r.workflowId,
      r.runId,
      r.identity,
      r.trigger,
      r.phase,
      r.oldKeyId ?? null,
      r.newKeyId ?? null,
      r.outcome ?? null,
      r.ended,
    ],
  );
}

export async function listRotations(
  q: Queryable,
  opts: { identity?: string; limit?: number } = {},
): Promise<RotationRecord[]> {
  const { rows } = await q.query<Row>(
    `SELECT * FROM rotations WHERE ($1::text IS NULL OR identity = $1) ORDER BY started_at DESC LIMIT $2`,
    [opts.identity ?? null, opts.limit ?? 50],
  );
  return rows.map(fromRow);
}

/** The most recent rotation of `identity` that completed, whatever its trigger. */
export async function lastCompletedRotation(
  q: Queryable,
  identity: string,
): Promise<RotationRecord | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT * FROM rotations WHERE identity = $1 AND phase = 'completed' ORDER BY ended_at DESC LIMIT 1`,
    [identity],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}
