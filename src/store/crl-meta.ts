/**
 * The CRL's signed headers (migration 033): one row per identity and CRL head sequence number,
 * the JWS text exactly as served. Signing is the activities' (src/activities/crl-meta.ts); this
 * store computes what a header describes from one snapshot and keeps what was signed.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Pool } from './db';
import type { Queryable } from './queryable';
import { openCrlSnapshot } from './revocations';

export interface CrlDigest {
  /** The head of the snapshot the body was read from (the body's CRL-Head). */
  seq: number;
  /** Lines of the full body. */
  records: number;
  /** Lowercase hex SHA-256 of the full body exactly as `rotor serve` streams it. */
  sha256: string;
}

/** The hash state after the body at `seq` (never updated in place: copies are carried on). */
interface DigestState {
  seq: number;
  records: number;
  hash: Hash;
}

/** Per pool (one database): the newest body this process hashed. */
const lastDigest = new WeakMap<Pool, DigestState>();

/**
 * Reads the full CRL body from one REPEATABLE READ snapshot (openCrlSnapshot: the head and the
 * lines come from the same snapshot, so the three numbers describe one body, whatever commits
 * meanwhile) and hashes it the way `rotor serve` writes it: every line followed by `\n`.
 *
 * After a revoke batch only the new lines are read: when this process hashed the body at seq S
 * and no compaction happened since (the snapshot's horizon is at or below S), the body at the
 * head H is the body at S followed by the lines S < seq <= H (appends take seq numbers in commit
 * order and are never removed but by a compaction, migration 080), so the hash state of S is
 * carried on over those lines. Anything else (a compaction since, another process's newer
 * state, a fresh worker) reads the whole body.
 */
export async function crlDigest(pool: Pool): Promise<CrlDigest> {
  const snapshot = await openCrlSnapshot(pool);
  try {
    const last = lastDigest.get(pool);
    const carry = last !== undefined && last.seq <= snapshot.head && snapshot.horizon <= last.seq;
    const hash = carry ? last.hash.copy() : createHash('sha256');
    let records = carry ? last.records : 0;
    for await (const batch of snapshot.batches(carry ? last.seq : 0)) {
      for (const line of batch) hash.update(line).update('\n');
      records += batch.length;
    }
    if (!last || last.seq < snapshot.head) {
      lastDigest.set(pool, { seq: snapshot.head, records, hash: hash.copy() });
    }
    return { seq: snapshot.head, records, sha256: hash.digest('hex') };
  } finally {
    await snapshot.close();
  }
}

export interface StoredCrlMeta {
  identity: string;
  seq: number;
  records: number;
  sha256: string;
  issuedAt: Date;
  nextUpdate: Date;
  signerKeyId: string;
  jws: string;
}

interface Row {
  identity: string;
  seq: string;
  records: string;
  sha256: string;
  issued_at: Date;
  next_update: Date;
  signer_key_id: string;
  jws: string;
}

function fromRow(r: Row): StoredCrlMeta {
  return {
    identity: r.identity,
    seq: Number(r.seq),
    records: Number(r.records),
    sha256: r.sha256,
    issuedAt: r.issued_at,
    nextUpdate: r.next_update,
    signerKeyId: r.signer_key_id,
    jws: r.jws,
  };
}

/** The identity's header for the highest seq signed so far, or null before the first. */
export async function latestCrlMeta(q: Queryable, identity: string): Promise<StoredCrlMeta | null> {
  const { rows } = await q.query<Row>(
    'SELECT * FROM crl_meta WHERE identity = $1 ORDER BY seq DESC LIMIT 1',
    [identity],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** The identity's header for exactly `seq`, or null when none was signed for it. */
export async function crlMetaAt(q: Queryable, identity: string, seq: number): Promise<StoredCrlMeta | null> {
  const { rows } = await q.query<Row>('SELECT * FROM crl_meta WHERE identity = $1 AND seq = $2', [
    identity,
    seq,
  ]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * Stores a signed header. A header for the same (identity, seq) describes the same body, so the
 * later-issued one replaces it (a renewal); an older-issued one arriving late changes nothing.
 */
export async function storeCrlMeta(q: Queryable, meta: StoredCrlMeta): Promise<void> {
  await q.query(
    `INSERT INTO crl_meta (identity, seq, records, sha256, issued_at, next_update, signer_key_id, jws)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (identity, seq) DO UPDATE
       SET records = EXCLUDED.records, sha256 = EXCLUDED.sha256, issued_at = EXCLUDED.issued_at,
           next_update = EXCLUDED.next_update, signer_key_id = EXCLUDED.signer_key_id, jws = EXCLUDED.jws
     WHERE crl_meta.issued_at < EXCLUDED.issued_at`,
    [
      meta.identity,
      meta.seq,
      meta.records,
      meta.sha256,
      meta.issuedAt,
      meta.nextUpdate,
      meta.signerKeyId,
      meta.jws,
    ],
  );
}
