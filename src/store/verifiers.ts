/**
 * The verifier registry: what each verifier reported at its last check-in, and the questions the
 * rotation's adoption step asks of it (who is live, who holds anchor version v, who has accepted
 * a manifest signed by key K).
 */
import type { Queryable } from './queryable';

export interface CheckIn {
  verifierId: string;
  anchorVersion: number;
  /** Signing identity whose anchor the verifier holds; 'default' when omitted. */
  identity?: string;
  /** Bare lowercase hex key_ids. */
  trustedKeyIds: string[];
  /** VALID results per key_id, as counted by the verifier since it started. */
  validCounts: Record<string, number>;
  /** When the check-in happened; the database clock when omitted. */
  at?: Date;
}

export interface VerifierRecord {
  verifierId: string;
  identity: string;
  anchorVersion: number;
  trustedKeyIds: string[];
  firstSeenAt: Date;
  lastSeenAt: Date;
}

export const DEFAULT_IDENTITY = 'default';

export async function recordCheckIn(q: Queryable, checkIn: CheckIn): Promise<void> {
  const keyIds = Object.keys(checkIn.validCounts);
  const counts = keyIds.map((k) => checkIn.validCounts[k]!);
  // One statement, so a check-in is atomic even on the pool.
  await q.query(
    `WITH at AS (SELECT coalesce($6::timestamptz, now()) AS t),
     v AS (
       INSERT INTO verifiers (verifier_id, identity, anchor_version, trusted_key_ids, first_seen_at, last_seen_at)
       SELECT $1, $2, $3, $4::text[], t, t FROM at
       ON CONFLICT (verifier_id) DO UPDATE SET
         identity = EXCLUDED.identity,
         anchor_version = EXCLUDED.anchor_version,
         trusted_key_ids = EXCLUDED.trusted_key_ids,
         last_seen_at = EXCLUDED.last_seen_at
       RETURNING verifier_id
     )
     INSERT INTO verifier_key_results (verifier_id, key_id, valid_count, accepted_at, reported_at)
     SELECT v.verifier_id, r.key_id, r.n, CASE WHEN r.n > 0 THEN at.t END, at.t
       FROM v, at, unnest($5::text[], $7::bigint[]) AS r(key_id, n)
     ON CONFLICT (verifier_id, key_id) DO UPDATE SET
       valid_count = EXCLUDED.valid_count,
       accepted_at = coalesce(verifier_key_results.accepted_at, EXCLUDED.accepted_at),
       reported_at = EXCLUDED.reported_at`,
    [
      checkIn.verifierId,
      checkIn.identity ?? DEFAULT_IDENTITY,
      checkIn.anchorVersion,
      checkIn.trustedKeyIds,
      keyIds,
      checkIn.at ?? null,
      counts,
    ],
  );
}

interface VerifierRow {
  verifier_id: string;
  identity: string;
  anchor_version: number;
  trusted_key_ids: string[];
  first_seen_at: Date;
  last_seen_at: Date;
}

const COLUMNS =
  'v.verifier_id, v.identity, v.anchor_version, v.trusted_key_ids, v.first_seen_at, v.last_seen_at';

function toRecord(r: VerifierRow): VerifierRecord {
  return {
    verifierId: r.verifier_id,
    identity: r.identity,
    anchorVersion: r.anchor_version,
    trustedKeyIds: r.trusted_key_ids,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
  };
}

export interface LiveWindow {
  /** A verifier is live when it checked in within this many seconds of `now`. */
  withinSeconds: number;
  /** The database clock when omitted. */
  now?: Date;
}

const LIVE = `v.last_seen_at >= coalesce($1::timestamptz, now()) - make_interval(secs => $2)`;

export async function liveVerifiers(q: Queryable, window: LiveWindow): Promise<VerifierRecord[]> {
  const { rows } = await q.query<VerifierRow>(
    `SELECT ${COLUMNS} FROM verifiers v WHERE ${LIVE} ORDER BY v.verifier_id`,
    [window.now ?? null, window.withinSeconds],
  );
  return rows.map(toRecord);
}

export interface AnchorQuery extends LiveWindow {
  identity?: string;
  version: number;
}

/** Live verifiers of `identity` that hold anchor version `version` or later. */
export async function verifiersHolding(q: Queryable, query: AnchorQuery): Promise<VerifierRecord[]> {
  const { rows } = await q.query<VerifierRow>(
    `SELECT ${COLUMNS} FROM verifiers v
      WHERE ${LIVE} AND v.identity = $3 AND v.anchor_version >= $4 ORDER BY v.verifier_id`,
    [query.now ?? null, query.withinSeconds, query.identity ?? DEFAULT_IDENTITY, query.version],
  );
  return rows.map(toRecord);
}

/** Live verifiers of `identity` still on an anchor version older than `version`. */
export async function verifiersBehind(q: Queryable, query: AnchorQuery): Promise<VerifierRecord[]> {
  const { rows } = await q.query<VerifierRow>(
    `SELECT ${COLUMNS} FROM verifiers v
      WHERE ${LIVE} AND v.identity = $3 AND v.anchor_version < $4 ORDER BY v.verifier_id`,
    [query.now ?? null, query.withinSeconds, query.identity ?? DEFAULT_IDENTITY, query.version],
  );
  return rows.map(toRecord);
}

/** Verifiers (live or not) that have ever reported a VALID result for a manifest signed by `keyId`. */
export async function verifiersThatAccepted(q: Queryable, keyId: string): Promise<VerifierRecord[]> {
  const { rows } = await q.query<VerifierRow>(
    `SELECT ${COLUMNS} FROM verifiers v
       JOIN verifier_key_results r ON r.verifier_id = v.verifier_id
      WHERE r.key_id = $1 AND r.accepted_at IS NOT NULL ORDER BY v.verifier_id`,
    [keyId],
  );
  return rows.map(toRecord);
}

/** Live verifiers that have not yet reported a VALID result for `keyId`. */
export async function liveVerifiersNotAccepted(
  q: Queryable,
  query: LiveWindow & { keyId: string },
): Promise<VerifierRecord[]> {
  const { rows } = await q.query<VerifierRow>(
    `SELECT ${COLUMNS} FROM verifiers v
      WHERE ${LIVE} AND NOT EXISTS (
        SELECT 1 FROM verifier_key_results r
         WHERE r.verifier_id = v.verifier_id AND r.key_id = $3 AND r.accepted_at IS NOT NULL)
      ORDER BY v.verifier_id`,
    [query.now ?? null, query.withinSeconds, query.keyId],
  );
  return rows.map(toRecord);
}

export async function getVerifier(
  q: Queryable,
  verifierId: string,
): Promise<(VerifierRecord & { validCounts: Record<string, number> }) | null> {
  const { rows } = await q.query<VerifierRow>(`SELECT ${COLUMNS} FROM verifiers v WHERE v.verifier_id = $1`, [
    verifierId,
  ]);
  if (!rows[0]) return null;
  const counts = await q.query<{ key_id: string; valid_count: string }>(
    'SELECT key_id, valid_count FROM verifier_key_results WHERE verifier_id = $1 ORDER BY key_id',
    [verifierId],
  );
  const validCounts: Record<string, number> = {};
  for (const c of counts.rows) validCounts[c.key_id] = Number(c.valid_count);
  return { ...toRecord(rows[0]), validCounts };
}

export async function countVerifiers(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*) AS n FROM verifiers');
  return Number(rows[0]!.n);
}
