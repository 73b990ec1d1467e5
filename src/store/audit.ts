/**
 * The audit log: append-only, each entry hash-chained to the one before. An entry's hash is
 * SHA-256 over the canonical JSON of {id, recorded_at, actor, action, subject, details} followed
 * by the previous entry's hash, so editing, inserting or deleting any row breaks the chain at a
 * row `verifyAuditChain` can name. The audit_head row (last id and hash) exposes entries cut off
 * the end, and its row lock serialises appends so the chain never forks.
 */
import { createHash } from 'node:crypto';
import { canonicalize, fromPlain, type JsonValue, parseJson, toPlain } from '../manifest';
import type { RootSet } from '../manifest/anchor-jws';
import { type CheckpointSignature, checkpointProblem } from '../manifest/audit-checkpoint';
import { atomically, type Queryable } from './queryable';

export interface AuditInput {
  /** Who acted: a person, `rotor`, a workflow id. */
  actor: string;
  /** What happened, e.g. `key.generated`, `anchor.published`. */
  action: string;
  /** What it happened to (a key_id, a rotation id), for `listAudit({ subject })`. */
  subject?: string;
  /** JSON-able facts; stored in canonical form (null members dropped, strings NFC). */
  details: Record<string, unknown>;
  /** An append with a key already in the log returns that entry and appends nothing. */
  idempotencyKey?: string;
}

export interface AuditEntry {
  id: number;
  recordedAt: Date;
  actor: string;
  action: string;
  subject: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

interface AuditRow {
  id: string;
  recorded_at: Date;
  actor: string;
  action: string;
  subject: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

/** An entry's chain hash: anyone with the rows can recompute it, which is why checkpoints exist. */
export function entryHash(
  e: { id: number; recordedAt: Date; actor: string; action: string; subject: string | null },
  details: JsonValue,
  prevHash: string,
): string {
  const entry: JsonValue = new Map<string, JsonValue>([
    ['id', fromPlain(e.id)],
    ['recorded_at', e.recordedAt.toISOString()],
    ['actor', e.actor],
    ['action', e.action],
    ['subject', e.subject],
    ['details', details],
  ]);
  return createHash('sha256')
    .update(canonicalize(entry) + prevHash, 'utf8')
    .digest('hex');
}

function toEntry(r: AuditRow): AuditEntry {
  return {
    id: Number(r.id),
    recordedAt: r.recorded_at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: toPlain(parseJson(r.details)) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export async function appendAudit(q: Queryable, input: AuditInput): Promise<AuditEntry> {
  const details = parseJson(canonicalize(fromPlain(input.details)));
  const detailsText = canonicalize(details);
  return atomically(q, async (client) => {
    // Millisecond precision, so the timestamp reads back exactly as it was hashed.
    const head = await client.query<{ last_id: string; last_hash: string; now: Date }>(
      `SELECT last_id, last_hash, date_trunc('milliseconds', clock_timestamp()) AS now
         FROM audit_head FOR UPDATE`,
    );
    const { last_id, last_hash, now } = head.rows[0]!;
    // Checked under the head's row lock: two attempts with one key cannot both append.
    if (input.idempotencyKey) {
      const seen = await client.query<AuditRow>('SELECT * FROM audit_log WHERE idempotency_key = $1', [
        input.idempotencyKey,
      ]);
      if (seen.rows[0]) return toEntry(seen.rows[0]);
    }
    const id = Number(last_id) + 1;
    const prevHash = last_id === '0' ? GENESIS_HASH : last_hash;
    const subject = input.subject ?? null;
    const hash = entryHash(
      { id, recordedAt: now, actor: input.actor, action: input.action, subject },
      details,
      prevHash,
    );
    const { rows } = await client.query<AuditRow>(
      `INSERT INTO audit_log (id, recorded_at, actor, action, subject, details, prev_hash, hash, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [
        id,
        now,
        input.actor,
        input.action,
        subject,
        detailsText,
        prevHash,
        hash,
        input.idempotencyKey ?? null,
      ],
    );
    await client.query('UPDATE audit_head SET last_id = $1, last_hash = $2', [id, hash]);
    return toEntry(rows[0]!);
  });
}

/** The latest `limit` entries (of `subject`, if given), oldest first. */
export async function listAudit(
  q: Queryable,
  opts: { subject?: string; limit?: number } = {},
): Promise<AuditEntry[]> {
  const { rows } = await q.query<AuditRow>(
    `SELECT * FROM (
       SELECT * FROM audit_log WHERE ($1::text IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2
     ) latest ORDER BY id`,
    [opts.subject ?? null, opts.limit ?? 100],
  );
  return rows.map(toEntry);
}

export interface AuditProblem {
  id: number;
  problem: string;
}

export interface AuditVerification {
  ok: boolean;
  entries: number;
  problems: AuditProblem[];
}

const VERIFY_PAGE = 1000;

/** Walks the whole chain in id order (keyset pages, constant memory) and names every break. */
export async function verifyAuditChain(q: Queryable): Promise<AuditVerification> {
  const problems: AuditProblem[] = [];
  let entries = 0;
  let lastId = 0;
  let lastHash = GENESIS_HASH;
  for (;;) {
    const { rows } = await q.query<AuditRow>('SELECT * FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2', [
      lastId,
      VERIFY_PAGE,
    ]);
    for (const r of rows) {
      const id = Number(r.id);
      entries++;
      if (id !== lastId + 1) {
        const range =
          id - 1 === lastId + 1 ? `entry ${lastId + 1} is` : `entries ${lastId + 1}..${id - 1} are`;
        problems.push({ id: lastId + 1, problem: `${range} missing: deleted from the log` });
      } else if (r.prev_hash !== lastHash) {
        problems.push({
          id,
          problem:
            lastId === 0
              ? 'prev_hash is not the genesis hash: entries before it were deleted or it was inserted'
              : `prev_hash does not match entry ${lastId}'s hash: entry ${lastId} was replaced or this entry was inserted`,
        });
      }
      let expected: string | null = null;
      try {
        expected = entryHash(
          { id, recordedAt: r.recorded_at, actor: r.actor, action: r.action, subject: r.subject },
          parseJson(r.details),
          r.prev_hash,
        );
      } catch {
        problems.push({ id, problem: 'details are not valid JSON: the entry was edited' });
      }
      if (expected !== null && expected !== r.hash) {
        problems.push({ id, problem: 'content does not match its hash: the entry was edited' });
      }
      lastId = id;
      lastHash = r.hash;
    }
    if (rows.length < VERIFY_PAGE) break;
  }
  const head = await q.query<{ last_id: string; last_hash: string }>(
    'SELECT last_id, last_hash FROM audit_head',
  );
  const headId = Number(head.rows[0]?.last_id ?? 0);
  if (headId > lastId) {
    problems.push({
      id: lastId + 1,
      problem: `the log ends at entry ${lastId} but the head records entry ${headId}: entries were deleted from the end`,
    });
  } else if (headId < lastId) {
    problems.push({
      id: headId + 1,
      problem: `entries after ${headId} were added outside rotor (the head records ${headId})`,
    });
  } else if (headId > 0 && head.rows[0]!.last_hash !== lastHash) {
    problems.push({
      id: lastId,
      problem: "the head's hash differs from the last entry's: the last entry was replaced",
    });
  }
  return { ok: problems.length === 0, entries, problems };
}

export interface StoredCheckpoint {
  identity: string;
  auditId: number;
  auditHash: string;
  issuedAt: string;
  rootVersion: number;
  signatures: CheckpointSignature[];
}

/** Stores a signed checkpoint; a second one for the same entry (a retried activity) is dropped. */
export async function recordCheckpoint(q: Queryable, c: StoredCheckpoint): Promise<void> {
  await q.query(
    `INSERT INTO audit_checkpoints (identity, audit_id, audit_hash, issued_at, root_version, signatures)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (identity, audit_id) DO NOTHING`,
    [c.identity, c.auditId, c.auditHash, c.issuedAt, c.rootVersion, JSON.stringify(c.signatures)],
  );
}

export interface CheckpointVerification {
  ok: boolean;
  checkpoints: number;
  problems: { checkpoint: number; auditId: number; problem: string }[];
}

/**
 * Every checkpoint (of `identity`, or all) against the pinned root set and against the chain as
 * it is now: a checkpoint that does not verify, or whose entry's hash differs from the one it
 * signed, means the log was rewritten at or before that entry.
 */
export async function verifyCheckpoints(
  q: Queryable,
  root: RootSet,
  identity?: string,
): Promise<CheckpointVerification> {
  const { rows } = await q.query<{
    id: string;
    identity: string;
    audit_id: string;
    audit_hash: string;
    issued_at: string;
    signatures: CheckpointSignature[];
    current_hash: string | null;
  }>(
    `SELECT c.id, c.identity, c.audit_id, c.audit_hash, c.issued_at, c.signatures, a.hash AS current_hash
       FROM audit_checkpoints c LEFT JOIN audit_log a ON a.id = c.audit_id
      WHERE $1::text IS NULL OR c.identity = $1
      ORDER BY c.id`,
    [identity ?? null],
  );
  const problems: CheckpointVerification['problems'] = [];
  for (const r of rows) {
    const auditId = Number(r.audit_id);
    const claim = { identity: r.identity, auditId, auditHash: r.audit_hash, issuedAt: r.issued_at };
    const bad = checkpointProblem(claim, Array.isArray(r.signatures) ? r.signatures : [], root);
    if (bad !== null) {
      problems.push({ checkpoint: Number(r.id), auditId, problem: `checkpoint not trusted: ${bad}` });
    } else if (r.current_hash === null) {
      problems.push({
        checkpoint: Number(r.id),
        auditId,
        problem: `entry ${auditId} is gone: the log was cut`,
      });
    } else if (r.current_hash !== r.audit_hash) {
      problems.push({
        checkpoint: Number(r.id),
        auditId,
        problem: `entry ${auditId}'s hash differs from the signed checkpoint: the log was rewritten at or before entry ${auditId}`,
      });
    }
  }
  return { ok: problems.length === 0, checkpoints: rows.length, problems };
}
