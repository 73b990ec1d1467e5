/**
 * Manifests a rotation could not re-issue, kept whole in Postgres so the workflow's history and
 * status carry only a count and a sample however many there are.
 */
import type { Queryable } from './queryable';

export interface UnresignableRow {
  manifestId: string;
  reason: string;
}

export async function recordUnresignable(
  q: Queryable,
  rotation: { workflowId: string; runId: string },
  rows: UnresignableRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO rotation_unresignable (workflow_id, run_id, manifest_id, reason)
     SELECT $1, $2, m, r FROM unnest($3::text[], $4::text[]) AS u(m, r)
     ON CONFLICT (run_id, manifest_id) DO NOTHING`,
    [rotation.workflowId, rotation.runId, rows.map((r) => r.manifestId), rows.map((r) => r.reason)],
  );
}

/** One page of a rotation's list (its latest run when `runId` is omitted), by manifest id. */
export async function pageUnresignable(
  q: Queryable,
  opts: { workflowId: string; runId?: string; afterManifestId?: string | null; limit: number },
): Promise<UnresignableRow[]> {
  const { rows } = await q.query<{ manifest_id: string; reason: string }>(
    `SELECT manifest_id, reason FROM rotation_unresignable
      WHERE workflow_id = $1
        AND run_id = coalesce($2, (SELECT run_id FROM rotation_unresignable WHERE workflow_id = $1
                                     ORDER BY recorded_at DESC LIMIT 1))
        AND ($3::text IS NULL OR manifest_id > $3)
      ORDER BY manifest_id LIMIT $4`,
    [opts.workflowId, opts.runId ?? null, opts.afterManifestId ?? null, opts.limit],
  );
  return rows.map((r) => ({ manifestId: r.manifest_id, reason: r.reason }));
}
