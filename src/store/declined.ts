/**
 * Manifests a rotation run declined to re-issue, with the reason (migration 010). Written in the
 * same transaction as the batch's twins, so a retried batch neither loses nor doubles a row.
 */
import type { Queryable } from './queryable';

export interface DeclinedRow {
  manifestId: string;
  keyId: string | null;
  code: string;
  reason: string;
}

export interface DeclinedEntry extends DeclinedRow {
  declinedAt: Date;
}

export async function recordDeclined(
  q: Queryable,
  run: { runId: string; workflowId: string },
  rows: DeclinedRow[],
): Promise<number> {
  if (rows.length === 0) return 0;
  const { rowCount } = await q.query(
    `INSERT INTO rotation_declined (run_id, workflow_id, manifest_id, key_id, code, reason)
     SELECT $1, $2, r.manifest_id, r.key_id, r.code, r.reason
       FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS r(manifest_id, key_id, code, reason)
     ON CONFLICT DO NOTHING`,
    [
      run.runId,
      run.workflowId,
      rows.map((r) => r.manifestId),
      rows.map((r) => r.keyId),
      rows.map((r) => r.code),
      rows.map((r) => r.reason),
    ],
  );
  return rowCount ?? 0;
}

export async function countDeclined(q: Queryable, runId: string): Promise<Record<string, number>> {
  const { rows } = await q.query<{ code: string; n: string }>(
    'SELECT code, count(*) AS n FROM rotation_declined WHERE run_id = $1 GROUP BY code ORDER BY code',
    [runId],
  );
  return Object.fromEntries(rows.map((r) => [r.code, Number(r.n)]));
}

/** One page of a run's declined manifests, in manifest_id order. */
export async function listDeclined(
  q: Queryable,
  runId: string,
  opts: { afterManifestId?: string | null; limit?: number } = {},
): Promise<DeclinedEntry[]> {
  const { rows } = await q.query<{
    manifest_id: string;
    key_id: string | null;
    code: string;
    reason: string;
    declined_at: Date;
  }>(
    `SELECT manifest_id, key_id, code, reason, declined_at FROM rotation_declined
      WHERE run_id = $1 AND ($2::text IS NULL OR manifest_id > $2)
      ORDER BY manifest_id LIMIT $3`,
    [runId, opts.afterManifestId ?? null, opts.limit ?? 1000],
  );
  return rows.map((r) => ({
    manifestId: r.manifest_id,
    keyId: r.key_id,
    code: r.code,
    reason: r.reason,
    declinedAt: r.declined_at,
  }));
}

/** Every declined manifest id of a run whose workflow is `workflowId` and that ran latest. */
export async function latestRunOf(q: Queryable, workflowId: string): Promise<string | null> {
  const { rows } = await q.query<{ run_id: string }>(
    'SELECT run_id FROM rotation_declined WHERE workflow_id = $1 ORDER BY declined_at DESC LIMIT 1',
    [workflowId],
  );
  return rows[0]?.run_id ?? null;
}
