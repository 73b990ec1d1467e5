/**
 * Verification results reported at check-in, over time: each check-in's increase over the
 * verifier's previous report goes into a time bucket (the rotation page's chart, the analysis
 * gate's window) and into running totals (Prometheus). Schema: `migrations/071_verification_results.sql`.
 */
import type { PoolClient } from './db';
import type { Queryable } from './queryable';

/** key_id → reason → count, cumulative since the verifier started. */
export type RejectionCounts = Record<string, Record<string, number>>;

export const NO_KEY = 'none';

export interface ResultReport {
  verifierId: string;
  identity: string;
  validCounts: Record<string, number>;
  rejectionCounts: RejectionCounts;
  bucketSeconds: number;
}

interface Delta {
  keyId: string;
  outcome: string;
  count: number;
}

/**
 * Adds this report's increases to the buckets and totals, and stores the rejection counts as
 * the verifier's latest. Runs on the caller's client, before the check-in itself overwrites the
 * VALID counts it compares with: call it inside the check-in's transaction.
 */
export async function recordResults(client: PoolClient, report: ResultReport): Promise<void> {
  // One verifier's check-ins are counted one at a time, so two cannot both add the same increase.
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`rotor-results:${report.verifierId}`]);
  const before = await client.query<{ key_id: string; outcome: string; n: string }>(
    `SELECT key_id, 'VALID' AS outcome, valid_count AS n FROM verifier_key_results WHERE verifier_id = $1
     UNION ALL
     SELECT key_id, reason, count FROM verifier_rejections WHERE verifier_id = $1`,
    [report.verifierId],
  );
  const previous = new Map(before.rows.map((r) => [`${r.key_id} ${r.outcome}`, Number(r.n)]));
  const deltas: Delta[] = [];
  const add = (keyId: string, outcome: string, n: number) => {
    const was = previous.get(`${keyId} ${outcome}`) ?? 0;
    // A lower count than last time: the verifier restarted and counts from zero again.
    const d = n >= was ? n - was : n;
    if (d > 0) deltas.push({ keyId, outcome, count: d });
  };
  for (const [keyId, n] of Object.entries(report.validCounts)) add(keyId, 'VALID', n);
  const rej: { keyId: string; reason: string; n: number }[] = [];
  for (const [keyId, reasons] of Object.entries(report.rejectionCounts)) {
    for (const [reason, n] of Object.entries(reasons)) {
      add(keyId, reason, n);
      rej.push({ keyId, reason, n });
    }
  }
  if (rej.length > 0) {
    await client.query(
      `INSERT INTO verifier_rejections (verifier_id, key_id, reason, count, reported_at)
       SELECT $1, k, r, n, now() FROM unnest($2::text[], $3::text[], $4::bigint[]) AS x(k, r, n)
       ON CONFLICT (verifier_id, key_id, reason) DO UPDATE SET count = EXCLUDED.count, reported_at = now()`,
      [report.verifierId, rej.map((x) => x.keyId), rej.map((x) => x.reason), rej.map((x) => x.n)],
    );
  }
  if (deltas.length === 0) return;
  const params = [
    report.identity,
    report.bucketSeconds,
    deltas.map((d) => d.keyId),
    deltas.map((d) => d.outcome),
    deltas.map((d) => d.count),
  ];
  await client.query(
    `INSERT INTO verification_buckets (identity, bucket, key_id, outcome, count)
     SELECT $1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), k, o, n
       FROM unnest($3::text[], $4::text[], $5::bigint[]) AS x(k, o, n)
     ON CONFLICT (identity, bucket, key_id, outcome) DO UPDATE SET count = verification_buckets.count + EXCLUDED.count`,
    params,
  );
  await client.query(
    `INSERT INTO verification_totals (identity, key_id, outcome, count)
     SELECT $1, k, o, n FROM unnest($2::text[], $3::text[], $4::bigint[]) AS x(k, o, n)
     ON CONFLICT (identity, key_id, outcome) DO UPDATE SET count = verification_totals.count + EXCLUDED.count`,
    [report.identity, params[2], params[3], params[4]],
  );
}

export interface TotalRow {
  identity: string;
  keyId: string;
  outcome: string;
  count: number;
}

export async function verificationTotals(q: Queryable): Promise<TotalRow[]> {
  const { rows } = await q.query<{ identity: string; key_id: string; outcome: string; count: string }>(
    'SELECT identity, key_id, outcome, count FROM verification_totals ORDER BY identity, key_id, outcome',
  );
  return rows.map((r) => ({
    identity: r.identity,
    keyId: r.key_id,
    outcome: r.outcome,
    count: Number(r.count),
  }));
}

export interface BucketRow {
  bucket: Date;
  keyId: string;
  outcome: string;
  count: number;
}

/** Buckets of `identity` from `since` on, oldest first. */
export async function resultBuckets(q: Queryable, identity: string, since: Date): Promise<BucketRow[]> {
  const { rows } = await q.query<{ bucket: Date; key_id: string; outcome: string; count: string }>(
    `SELECT bucket, key_id, outcome, count FROM verification_buckets
      WHERE identity = $1 AND bucket >= $2 ORDER BY bucket, key_id, outcome`,
    [identity, since],
  );
  return rows.map((r) => ({ bucket: r.bucket, keyId: r.key_id, outcome: r.outcome, count: Number(r.count) }));
}

export interface WindowCounts {
  /** Per key_id: VALID and rejections by reason, summed over the window. */
  byKey: Record<string, { valid: number; rejected: Record<string, number> }>;
}

/** Results of `identity` in the buckets that start at or after `since`. */
export async function resultsSince(q: Queryable, identity: string, since: Date): Promise<WindowCounts> {
  const { rows } = await q.query<{ key_id: string; outcome: string; n: string }>(
    `SELECT key_id, outcome, sum(count) AS n FROM verification_buckets
      WHERE identity = $1 AND bucket >= $2 GROUP BY key_id, outcome`,
    [identity, since],
  );
  const byKey: WindowCounts['byKey'] = {};
  for (const r of rows) {
    const k = byKey[r.key_id] ?? { valid: 0, rejected: {} };
    byKey[r.key_id] = k;
    if (r.outcome === 'VALID') k.valid += Number(r.n);
    else k.rejected[r.outcome] = (k.rejected[r.outcome] ?? 0) + Number(r.n);
  }
  return { byKey };
}
