/**
 * The deployment's CRL: FileCRL lines stored exactly as signed, append-only, one per manifest_id.
 * Signing happens upstream (the interop core through a custodian); this store checks only that a
 * record's columns agree with its line, so the index can never disagree with what is served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RotorError, UsageError } from '../errors';
import { appendAudit } from './audit';
import { crlMetaAt, latestCrlMeta, type StoredCrlMeta } from './crl-meta';
import type { Pool, PoolClient } from './db';
import { atomically, type Queryable } from './queryable';

export interface RevocationInput {
  manifestId: string;
  /** One FileCRL JSON line, without its newline, exactly as signed. */
  line: string;
  signerKeyId: string;
  /** The record's revoked_at exactly as written in the line. */
  revokedAt: string;
}

export interface RevocationRecord extends RevocationInput {
  seq: number;
  recordedAt: Date;
}

// Postgres takes at most 65535 parameters per statement; arrays make that moot, but a batch of
// this size keeps one statement's memory and lock time modest.
const INSERT_BATCH = 5000;

function checkRecord(r: RevocationInput, index: number): void {
  const where = `revocation record ${index} (manifest_id ${JSON.stringify(r.manifestId)})`;
  if (/[\r\n]/.test(r.line)) throw new UsageError(`${where}: the line holds a line break`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.line);
  } catch {
    throw new UsageError(`${where}: the line is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${where}: the line is not a JSON object`);
  }
  const fields = parsed as Record<string, unknown>;
  const expect: Array<[string, string]> = [
    ['manifest_id', r.manifestId],
    ['signer_key_id', r.signerKeyId],
    ['revoked_at', r.revokedAt],
  ];
  for (const [field, value] of expect) {
    if (fields[field] !== value) {
      throw new UsageError(
        `${where}: the line's ${field} (${JSON.stringify(fields[field])}) differs from ${value}`,
      );
    }
  }
}

/**
 * Appends records; a manifest_id already in the CRL keeps its existing record (a revocation is
 * never replaced). Atomic: on a bad record nothing is written.
 */
export async function appendRevocations(
  q: Queryable,
  records: RevocationInput[],
): Promise<{ inserted: number; existing: number }> {
  records.forEach((r, i) => {
    checkRecord(r, i);
  });
  // The first record for a manifest_id in the batch wins, as an earlier stored one does.
  const first = new Map<string, RevocationInput>();
  for (const r of records) if (!first.has(r.manifestId)) first.set(r.manifestId, r);
  const unique = [...first.values()];
  if (unique.length === 0) return { inserted: 0, existing: records.length };
  return atomically(q, async (client) => {
    let inserted = 0;
    for (let i = 0; i < unique.length; i += INSERT_BATCH) {
      const batch = unique.slice(i, i + INSERT_BATCH);
      const result = await client.query(
        `INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (manifest_id) DO NOTHING`,
        [
          batch.map((r) => r.manifestId),
          batch.map((r) => r.line),
          batch.map((r) => r.signerKeyId),
          batch.map((r) => r.revokedAt),
        ],
      );
      inserted += result.rowCount ?? 0;
    }
    return { inserted, existing: records.length - inserted };
  });
}

interface RevocationRow {
  manifest_id: string;
  seq: string;
  line: string;
  signer_key_id: string;
  revoked_at: string;
  recorded_at: Date;
}

export async function getRevocation(q: Queryable, manifestId: string): Promise<RevocationRecord | null> {
  const { rows } = await q.query<RevocationRow>(
    'SELECT manifest_id, seq, line, signer_key_id, revoked_at, recorded_at FROM revocations WHERE manifest_id = $1',
    [manifestId],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    manifestId: r.manifest_id,
    seq: Number(r.seq),
    line: r.line,
    signerKeyId: r.signer_key_id,
    revokedAt: r.revoked_at,
    recordedAt: r.recorded_at,
  };
}

/** Just the line, for the hot lookup path. */
export async function getRevocationLine(q: Queryable, manifestId: string): Promise<string | null> {
  const { rows } = await q.query<{ line: string }>('SELECT line FROM revocations WHERE manifest_id = $1', [
    manifestId,
  ]);
  return rows[0]?.line ?? null;
}

/** Which of `manifestIds` already have a record. */
export async function revokedAmong(q: Queryable, manifestIds: string[]): Promise<Set<string>> {
  const { rows } = await q.query<{ manifest_id: string }>(
    'SELECT manifest_id FROM revocations WHERE manifest_id = ANY($1::text[])',
    [manifestIds],
  );
  return new Set(rows.map((r) => r.manifest_id));
}

/** The record count (the archive, compacted records included), kept by a trigger: constant time at any CRL size. */
export async function countRevocations(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ records: string }>('SELECT records FROM crl_state');
  return Number(rows[0]!.records);
}

export interface CrlHead {
  /** The highest sequence number any committed change used (an append or a compaction). */
  head: number;
  /** The sequence number the latest compaction took (0 before any): deltas start at or after it. */
  horizon: number;
  /** Records the served list holds (the archive minus the compacted). */
  served: number;
  /** Records compacted out of the served list (still in the archive). */
  compacted: number;
}

export async function crlHead(q: Queryable): Promise<CrlHead> {
  const { rows } = await q.query<{ head: string; horizon: string; records: string; compacted: string }>(
    'SELECT head, horizon, records, compacted FROM crl_state',
  );
  const r = rows[0]!;
  return {
    head: Number(r.head),
    horizon: Number(r.horizon),
    served: Number(r.records) - Number(r.compacted),
    compacted: Number(r.compacted),
  };
}

export interface CrlSnapshot extends CrlHead {
  /**
   * The served lines in publication (seq) order, in batches, read through a cursor (constant
   * memory): all of them, or only those after `since` (a delta).
   */
  batches(since?: number): AsyncGenerator<string[]>;
  /** Ends the snapshot and returns the connection; safe to call twice. */
  close(): Promise<void>;
}

const FETCH_SIZE = 2000;

/**
 * One consistent view of the CRL on a connection of its own: the head and the lines come from the
 * same snapshot, so an ETag computed from `head` names exactly the bytes streamed, and a verifier
 * that asks next for the records after `head` misses none (appends take seq numbers in commit
 * order, migration 080).
 */
export async function openCrlSnapshot(pool: Pool): Promise<CrlSnapshot> {
  const client = await pool.connect();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    try {
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      // A connection in an unknown state is not handed back to the pool.
      client.release(err instanceof Error ? err : true);
    }
  };
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const head = await crlHead(client);
    return { ...head, batches: (since = 0) => readBatches(client, since), close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function* readBatches(client: PoolClient, since: number): AsyncGenerator<string[]> {
  if (!Number.isSafeInteger(since) || since < 0)
    throw new UsageError(`since ${since} is not a sequence number`);
  const cursor = `crl_${randomBytes(4).toString('hex')}`;
  // Compacted records stay in revocations (the archive) and leave only what is served.
  await client.query(
    `DECLARE ${cursor} NO SCROLL CURSOR FOR
       SELECT line FROM revocations r
        WHERE r.seq > ${since}
          AND NOT EXISTS (SELECT 1 FROM revocations_compacted c WHERE c.seq = r.seq)
        ORDER BY r.seq`,
  );
  try {
    for (;;) {
      const { rows } = await client.query<{ line: string }>(`FETCH ${FETCH_SIZE} FROM ${cursor}`);
      if (rows.length === 0) return;
      yield rows.map((r) => r.line);
    }
  } finally {
    // The cursor dies with the transaction anyway; a failed CLOSE must not mask the stream's own error.
    await client.query(`CLOSE ${cursor}`).catch(() => {});
  }
}

/**
 * How long after a manifest's `expires_at` its revocation record stays served. rotor's verifier
 * (like the SDK's) refuses a manifest past `expires_at` by its own clock with no leeway, so a
 * compacted record matters only to a verifier whose clock runs behind the database's: the margin
 * must exceed that lag. An hour is far beyond NTP-disciplined hosts (milliseconds) and the
 * 5-minute skew allowances common elsewhere, and costs an hour's worth of records in the list.
 */
export const DEFAULT_COMPACTION_MARGIN_SECONDS = 3600;

export interface CompactionResult {
  /** Records compacted by this run (0: nothing had expired; head and horizon unchanged). */
  compacted: number;
  head: number;
  horizon: number;
  /** Records the served list holds afterwards. */
  served: number;
}

/**
 * Compacts the served CRL (ADR-0007, Consequences): records whose manifest expired more than
 * `marginSeconds` ago (by the database's clock) leave the full list and every delta. The records
 * stay in revocations (append-only, the archive); revocations_compacted names each, and one audit
 * entry says how many and at which horizon. The run takes a sequence number of its own, so the
 * head (and the ETag) moves, and verifiers holding an older position are told to fetch the full
 * list. Records of manifests rotor does not store, or with no expires_at, are never compacted.
 */
export async function compactCrl(
  q: Queryable,
  options: { marginSeconds?: number; actor: string },
): Promise<CompactionResult> {
  const marginSeconds = options.marginSeconds ?? DEFAULT_COMPACTION_MARGIN_SECONDS;
  if (!Number.isSafeInteger(marginSeconds) || marginSeconds < 0) {
    throw new UsageError(
      `the compaction margin must be a whole number of seconds >= 0, got ${marginSeconds}`,
    );
  }
  return atomically(q, async (client) => {
    // Serialises with appends (their statement trigger takes this lock first): the horizon drawn
    // below is above every committed record and below every later one.
    await client.query('SELECT 1 FROM crl_state FOR UPDATE');
    const { rows: candidates } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM revocations r JOIN manifests m ON m.manifest_id = r.manifest_id
        WHERE m.expires_at < now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT 1 FROM revocations_compacted c WHERE c.seq = r.seq)`,
      [marginSeconds],
    );
    if (Number(candidates[0]!.n) === 0) {
      const h = await crlHead(client);
      return { compacted: 0, head: h.head, horizon: h.horizon, served: h.served };
    }
    const { rows: drawn } = await client.query<{ horizon: string }>(
      "SELECT nextval(pg_get_serial_sequence('revocations', 'seq')) AS horizon",
    );
    const horizon = Number(drawn[0]!.horizon);
    const inserted = await client.query<{ first: string; last: string }>(
      `WITH moved AS (
         INSERT INTO revocations_compacted (seq, manifest_id, expires_at, horizon)
         SELECT r.seq, r.manifest_id, m.expires_at, $2
           FROM revocations r JOIN manifests m ON m.manifest_id = r.manifest_id
          WHERE m.expires_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM revocations_compacted c WHERE c.seq = r.seq)
         RETURNING seq)
       SELECT count(*) AS n, min(seq) AS first, max(seq) AS last FROM moved`,
      [marginSeconds, horizon],
    );
    const row = inserted.rows[0] as unknown as { n: string; first: string; last: string };
    const compacted = Number(row.n);
    await client.query(
      'UPDATE crl_state SET head = $1, horizon = $1, compacted = compacted + $2, updated_at = now()',
      [horizon, compacted],
    );
    const after = await crlHead(client);
    await appendAudit(client, {
      actor: options.actor,
      action: 'crl.compacted',
      subject: 'crl',
      details: {
        compacted,
        firstSeq: Number(row.first),
        lastSeq: Number(row.last),
        horizon,
        marginSeconds,
        served: after.served,
      },
    });
    return { compacted, head: after.head, horizon: after.horizon, served: after.served };
  });
}

/** Every line of the CRL in publication order, constant memory. */
export async function* streamRevocationLines(pool: Pool): AsyncGenerator<string> {
  const snapshot = await openCrlSnapshot(pool);
  try {
    for await (const batch of snapshot.batches()) yield* batch;
  } finally {
    await snapshot.close();
  }
}

/**
 * What `publishCrlToFile` did with the identity's signed header: `written` beside the body,
 * `behind` (no header is signed yet for the body's head: the file beside it, if any, is left
 * as it was, so a verifier refuses the pair and keeps what it held until the next write), or
 * `none` (the identity has never had a header: no revocation key).
 */
export type CrlHeaderFile = 'written' | 'behind' | 'none';

/** The file a static host serves the CRL's signed header from: `revocation` → `revocation.meta.jws`. */
export function crlHeaderPath(path: string): string {
  return `${path}.meta.jws`;
}

/**
 * Writes the CRL (one line per record, each ending in a newline) to `path` for static hosting:
 * a temp file beside it, flushed to disk, then renamed, so a reader sees the old file or the new
 * one, never half of one. With `identity`, its signed header for exactly that body (README "The
 * CRL's signed header") goes beside it at `crlHeaderPath(path)`, the same way, after the body: a
 * verifier that requires a header (any anchor naming a revocation key) takes a static CRL only
 * with one. The header's count and SHA-256 are checked against the bytes written first.
 */
export async function publishCrlToFile(
  pool: Pool,
  path: string,
  options: { identity?: string } = {},
): Promise<{ records: number; bytes: number; head: number; header?: CrlHeaderFile }> {
  const tmp = temporaryBeside(path);
  let records = 0;
  let bytes = 0;
  // Hashed only to check a header against: without an identity there is none.
  const hash = options.identity === undefined ? undefined : createHash('sha256');
  const snapshot = await openCrlSnapshot(pool);
  const head = snapshot.head;
  try {
    async function* chunks() {
      for await (const batch of snapshot.batches()) {
        const chunk = `${batch.join('\n')}\n`;
        records += batch.length;
        bytes += Buffer.byteLength(chunk);
        hash?.update(chunk);
        yield chunk;
      }
    }
    await pipeline(Readable.from(chunks()), createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    // The body is read: its connection goes back before the header's own queries (finally closes too).
    await snapshot.close();
    await syncFile(tmp);
    let header: StoredCrlMeta | null = null;
    if (options.identity !== undefined && hash) {
      header = await crlMetaAt(pool, options.identity, head);
      const sha256 = hash.digest('hex');
      if (header && (header.records !== records || header.sha256 !== sha256)) {
        throw new RotorError(
          `the signed CRL header of ${options.identity} at seq ${head} describes ${header.records} records (sha256 ${header.sha256.slice(0, 16)}…), not the ${records} written (sha256 ${sha256.slice(0, 16)}…): nothing published`,
          'CRL_PUBLISH',
        );
      }
    }
    await rename(tmp, path);
    if (options.identity === undefined) return { records, bytes, head };
    if (header) {
      await writeFileAtomically(crlHeaderPath(path), header.jws);
      return { records, bytes, head, header: 'written' };
    }
    const any = await latestCrlMeta(pool, options.identity);
    return { records, bytes, head, header: any ? 'behind' : 'none' };
  } catch (err) {
    await rm(tmp, { force: true });
    if ((err as { code?: string }).code?.startsWith('E')) {
      throw new UsageError(`cannot publish the CRL to ${path}: ${(err as Error).message}`, 'CRL_PUBLISH');
    }
    throw err;
  } finally {
    await snapshot.close();
  }
}

function temporaryBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeFileAtomically(path: string, text: string): Promise<void> {
  const tmp = temporaryBeside(path);
  try {
    await writeFile(tmp, text, { flag: 'wx', mode: 0o644 });
    await syncFile(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
