/**
 * The verifier registry: what each verifier reported at its last check-in, and the questions the
 * rotation's adoption step asks of it (who is live, who holds anchor version v, who has accepted
 * a manifest signed by key K).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors';
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
  /** SHA-256 of the signed anchor held, as reported (registered verifiers report this). */
  anchorSha256?: string;
}

export interface VerifierRecord {
  verifierId: string;
  identity: string;
  anchorVersion: number;
  trustedKeyIds: string[];
  firstSeenAt: Date;
  lastSeenAt: Date;
  /** Registered with a credential of its own (`rotor verifier register`); null for legacy rows. */
  registeredAt: Date | null;
  /** False for a registered verifier that has never checked in. */
  checkedIn: boolean;
  retiredAt: Date | null;
  retiredReason: string | null;
  /** SHA-256 of the signed anchor the verifier last reported holding. */
  anchorSha256: string | null;
}

export const DEFAULT_IDENTITY = 'default';

export async function recordCheckIn(q: Queryable, checkIn: CheckIn): Promise<void> {
  const keyIds = Object.keys(checkIn.validCounts);
  const counts = keyIds.map((k) => checkIn.validCounts[k]!);
  // One statement, so a check-in is atomic even on the pool.
  await q.query(
    `WITH at AS (SELECT coalesce($6::timestamptz, now()) AS t),
     v AS (
       INSERT INTO verifiers (verifier_id, identity, anchor_version, trusted_key_ids, first_seen_at, last_seen_at, anchor_sha256)
       SELECT $1, $2, $3, $4::text[], t, t, $8 FROM at
       ON CONFLICT (verifier_id) DO UPDATE SET
         identity = EXCLUDED.identity,
         anchor_version = EXCLUDED.anchor_version,
         trusted_key_ids = EXCLUDED.trusted_key_ids,
         first_seen_at = CASE WHEN verifiers.checked_in THEN verifiers.first_seen_at ELSE EXCLUDED.first_seen_at END,
         last_seen_at = EXCLUDED.last_seen_at,
         anchor_sha256 = EXCLUDED.anchor_sha256,
         checked_in = true
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
      checkIn.anchorSha256 ?? null,
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
  registered_at: Date | null;
  checked_in: boolean;
  retired_at: Date | null;
  retired_reason: string | null;
  anchor_sha256: string | null;
}

const COLUMNS =
  'v.verifier_id, v.identity, v.anchor_version, v.trusted_key_ids, v.first_seen_at, v.last_seen_at, ' +
  'v.registered_at, v.checked_in, v.retired_at, v.retired_reason, v.anchor_sha256';

function toRecord(r: VerifierRow): VerifierRecord {
  return {
    verifierId: r.verifier_id,
    identity: r.identity,
    anchorVersion: r.anchor_version,
    trustedKeyIds: r.trusted_key_ids,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    registeredAt: r.registered_at,
    checkedIn: r.checked_in,
    retiredAt: r.retired_at,
    retiredReason: r.retired_reason,
    anchorSha256: r.anchor_sha256,
  };
}

export interface LiveWindow {
  /** A verifier is live when it checked in within this many seconds of `now`. */
  withinSeconds: number;
  /** The database clock when omitted. */
  now?: Date;
}

const LIVE = `v.last_seen_at >= coalesce($1::timestamptz, now()) - make_interval(secs => $2)`;
/**
 * Who a gate waits for: every registered verifier not retired, checked in lately or not (silence
 * is "behind"), and legacy unregistered verifiers while they check in.
 */
const IN_GATE = `v.retired_at IS NULL AND (v.registered_at IS NOT NULL OR ${LIVE})`;

/**
 * The verifiers an adoption or acceptance gate of `identity` waits for (IN_GATE), each with
 * whether it has accepted a manifest signed by `keyId` (when given).
 */
export async function gateVerifiers(
  q: Queryable,
  query: LiveWindow & { identity: string; keyId?: string },
): Promise<(VerifierRecord & { accepted: boolean })[]> {
  const { rows } = await q.query<VerifierRow & { accepted: boolean }>(
    `SELECT ${COLUMNS}, EXISTS (
        SELECT 1 FROM verifier_key_results r
         WHERE r.verifier_id = v.verifier_id AND r.key_id = $4 AND r.accepted_at IS NOT NULL) AS accepted
       FROM verifiers v
      WHERE ${IN_GATE} AND v.identity = $3 ORDER BY v.verifier_id`,
    [query.now ?? null, query.withinSeconds, query.identity, query.keyId ?? null],
  );
  return rows.map((r) => ({ ...toRecord(r), accepted: r.accepted }));
}

/** What `rotor verifier register` prints once: the credential, never stored. */
export interface VerifierRegistration {
  verifierId: string;
  identity: string;
  /** `rvc_<secret>`: presented as `Authorization: Bearer …` at check-in. */
  credential: string;
}

const CREDENTIAL_PREFIX = 'rvc_';

function credentialDigest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/**
 * Registers a verifier of `identity` with a new credential (shown once), or gives a registered,
 * retired or legacy verifier a new one (the old credential stops working at once). A verifier
 * registered for another identity is refused: moving it is a retire and a new registration.
 */
export async function registerVerifier(
  q: Queryable,
  input: { verifierId: string; identity: string },
): Promise<VerifierRegistration> {
  const secret = randomBytes(32).toString('base64url');
  const { rows } = await q.query<{ identity: string }>(
    `INSERT INTO verifiers (verifier_id, identity, anchor_version, trusted_key_ids, first_seen_at, last_seen_at,
                            credential_sha256, registered_at, checked_in)
     VALUES ($1, $2, 0, '{}', now(), now(), $3, now(), false)
     ON CONFLICT (verifier_id) DO UPDATE SET
       credential_sha256 = EXCLUDED.credential_sha256,
       registered_at = coalesce(verifiers.registered_at, EXCLUDED.registered_at),
       retired_at = NULL,
       retired_reason = NULL
     WHERE verifiers.identity = EXCLUDED.identity
     RETURNING identity`,
    [input.verifierId, input.identity, credentialDigest(secret)],
  );
  if (rows.length === 0) {
    const existing = await getVerifier(q, input.verifierId);
    throw new UsageError(
      `verifier ${input.verifierId} is registered for identity ${existing?.identity ?? '?'}, not ${input.identity}: retire it and register a new id`,
      'VERIFIER_IDENTITY',
    );
  }
  return {
    verifierId: input.verifierId,
    identity: input.identity,
    credential: `${CREDENTIAL_PREFIX}${secret}`,
  };
}

/** Takes a verifier out of the gates' set (and its credential out of use) with the reason. */
export async function retireVerifier(
  q: Queryable,
  verifierId: string,
  reason: string,
): Promise<VerifierRecord> {
  if (!reason.trim()) throw new UsageError('retiring a verifier needs a reason', 'VERIFIER_RETIRE_REASON');
  const { rows } = await q.query<VerifierRow>(
    `UPDATE verifiers v SET retired_at = now(), retired_reason = $2
      WHERE v.verifier_id = $1 AND v.retired_at IS NULL
      RETURNING ${COLUMNS}`,
    [verifierId, reason],
  );
  if (!rows[0]) {
    const existing = await getVerifier(q, verifierId);
    if (!existing) throw new UsageError(`no verifier ${verifierId}`, 'VERIFIER_UNKNOWN');
    throw new UsageError(
      `verifier ${verifierId} is already retired (${existing.retiredReason})`,
      'VERIFIER_RETIRED',
    );
  }
  return toRecord(rows[0]);
}

/**
 * How a check-in's bearer credential stands for `verifierId`: `registered` (its own credential,
 * checked in constant time), `legacy` (the verifier is not registered: the caller decides about
 * the shared fleet token), or a refusal with the reason.
 */
export async function checkVerifierCredential(
  q: Queryable,
  verifierId: string,
  presented: string,
): Promise<
  { kind: 'registered'; identity: string } | { kind: 'legacy' } | { kind: 'refused'; reason: string }
> {
  const { rows } = await q.query<{
    identity: string;
    credential_sha256: Buffer | null;
    retired_at: Date | null;
  }>('SELECT identity, credential_sha256, retired_at FROM verifiers WHERE verifier_id = $1', [verifierId]);
  const row = rows[0];
  if (!row || row.credential_sha256 === null) return { kind: 'legacy' };
  if (row.retired_at !== null) return { kind: 'refused', reason: `verifier ${verifierId} is retired` };
  const secret = presented.startsWith(CREDENTIAL_PREFIX) ? presented.slice(CREDENTIAL_PREFIX.length) : '';
  if (!timingSafeEqual(credentialDigest(secret), row.credential_sha256)) {
    return { kind: 'refused', reason: `the credential is not verifier ${verifierId}'s` };
  }
  return { kind: 'registered', identity: row.identity };
}

/** The anchor version whose signed form (trust-anchor.jws) has this SHA-256, for `identity`. */
export async function anchorVersionBySha256(
  q: Queryable,
  identity: string,
  sha256: string,
): Promise<number | null> {
  const { rows } = await q.query<{ version: number }>(
    'SELECT version FROM trust_anchors WHERE identity = $1 AND jws_sha256 = $2',
    [identity, sha256],
  );
  return rows[0]?.version ?? null;
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
