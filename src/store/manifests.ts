/**
 * The manifest store. Each manifest's copy of record is stored exactly as received or as signed
 * (DOMAIN fact 6): a v0.1 manifest's JSON text, a v0.2 manifest's COSE envelope bytes (migration
 * 040); the other columns are read out of it by the interop core for indexing and are never
 * served. A stored copy is never overwritten: the same manifest_id with the same copy is a no-op,
 * with another a rejection.
 */
import { RotorError, UsageError } from '../errors';
import {
  admissionProblem,
  coseIndexFields,
  ManifestError,
  type ManifestIndexFields,
  manifestIndexFields,
  parseStoredCopy,
  parseTimestamp,
  type RegistryKey,
} from '../manifest';
import { atomically, type Queryable } from './queryable';

/** `quarantined`: imported with `--unverified`; no rotation ever re-issues, revokes or counts it. */
export type ManifestStatus = 'active' | 'superseded' | 'revoked' | 'quarantined';
export const MANIFEST_STATUSES: readonly ManifestStatus[] = [
  'active',
  'superseded',
  'revoked',
  'quarantined',
];
export type ManifestVersion = '0.1' | '0.2';
export const MANIFEST_VERSIONS: readonly ManifestVersion[] = ['0.1', '0.2'];

/** A manifest's copy of record: v0.1 JSON text, or a v0.2 COSE envelope. */
export type ManifestCopy =
  | { text: string; envelope?: undefined }
  | { envelope: Uint8Array; text?: undefined };

/** The version of a stored copy (text is v0.1, an envelope v0.2). */
export function versionOf(copy: { text?: string | null; envelope?: Uint8Array | null }): ManifestVersion {
  return copy.envelope !== undefined && copy.envelope !== null ? '0.2' : '0.1';
}

function sameCopy(
  a: { text?: string | null; envelope?: Uint8Array | null },
  b: { text?: string | null; envelope?: Uint8Array | null },
): boolean {
  if (a.envelope && b.envelope) return Buffer.from(a.envelope).equals(Buffer.from(b.envelope));
  return !a.envelope && !b.envelope && a.text === b.text;
}

export interface StoredManifest {
  manifestId: string;
  agentId: string | null;
  keyId: string | null;
  issuedAt: Date | null;
  expiresAt: Date | null;
  status: ManifestStatus;
  previousManifestId: string | null;
  version: ManifestVersion;
  /** v0.1: the JSON text; null for v0.2. */
  text: string | null;
  /** v0.2: the COSE envelope bytes; null for v0.1. */
  envelope: Uint8Array | null;
  storedAt: Date;
}

export function checkVersion(value: string): ManifestVersion {
  if ((MANIFEST_VERSIONS as readonly string[]).includes(value)) return value as ManifestVersion;
  throw new UsageError(
    `version must be one of ${MANIFEST_VERSIONS.join(', ')}, got '${value}'`,
    'MANIFEST_VERSION',
  );
}

export function checkStatus(value: string): ManifestStatus {
  if ((MANIFEST_STATUSES as readonly string[]).includes(value)) return value as ManifestStatus;
  throw new UsageError(
    `status must be one of ${MANIFEST_STATUSES.join(', ')}, got '${value}'`,
    'MANIFEST_STATUS',
  );
}

interface Columns {
  fields: ManifestIndexFields;
  issuedAt: Date | null;
  expiresAt: Date | null;
}

function timestampColumn(
  value: string | null,
  field: string,
  f: ManifestIndexFields,
  source?: string,
): Date | null {
  if (value === null) return null;
  const ts = parseTimestamp(value);
  if (typeof ts === 'string') {
    throw new ManifestError(ts, {
      ...(source === undefined ? {} : { source }),
      path: field,
      manifestId: f.manifestId,
    });
  }
  return new Date(ts.epochMs);
}

function columnsOf(copy: ManifestCopy, source?: string): Columns {
  const fields =
    copy.envelope !== undefined
      ? coseIndexFields(copy.envelope, source)
      : manifestIndexFields(copy.text, source);
  return {
    fields,
    issuedAt: timestampColumn(fields.issuedAt, 'issued_at', fields, source),
    expiresAt: timestampColumn(fields.expiresAt, 'expires_at', fields, source),
  };
}

export type ImportItem = ManifestCopy & {
  /** Where the copy came from (`file:line`), for rejection messages. */
  source: string;
};

/**
 * How an import trusts what it stores (issue 10 point 5). `registry` (the default, fail closed):
 * each manifest must verify under the public key rotor's key registry holds for its key_id.
 * `quarantine`: stored without that check as `quarantined`, a status no rotation ever selects
 * (`rotor manifests import --unverified`). `none`: stored as given, unverified and active; for
 * callers that model a row reaching the store by other means (a restored backup, a compromised
 * service), which is what the re-issue decision exists to catch.
 */
export type ImportVerification = 'registry' | 'quarantine' | 'none';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The registry's public keys (a small table), for the import's signature check. */
async function registryKeys(q: Queryable): Promise<Map<string, RegistryKey>> {
  const { rows } = await q.query<{ key_id: string; identity: string; public_key: Buffer }>(
    'SELECT key_id, identity, public_key FROM signing_keys',
  );
  return new Map(
    rows.map((r) => [
      r.key_id,
      { keyId: r.key_id, identity: r.identity, publicKey: new Uint8Array(r.public_key) },
    ]),
  );
}

/**
 * Why a copy may not be stored, or null: what every import refuses whatever it trusts (a byte
 * order mark, invalid JSON and raw control characters are the parser's refusals already).
 */
function formProblem(fields: ManifestIndexFields): string | null {
  if (!UUID.test(fields.manifestId))
    return `manifest_id ${JSON.stringify(fields.manifestId.slice(0, 64)).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')} is not a UUID`;
  return null;
}

export interface ImportResult {
  imported: number;
  duplicates: number;
  rejected: { source: string; reason: string }[];
}

/**
 * Imports a batch in one transaction. Bad records are reported, not fatal; good ones are stored
 * with status active, or revoked when the CRL already holds their manifest_id.
 */
export async function importManifests(
  q: Queryable,
  items: ImportItem[],
  options: { verify?: ImportVerification } = {},
): Promise<ImportResult> {
  const verify = options.verify ?? 'registry';
  const result: ImportResult = { imported: 0, duplicates: 0, rejected: [] };
  const candidates = new Map<string, ImportItem & Columns>();
  const registry = verify === 'registry' ? await registryKeys(q) : null;
  for (const item of items) {
    let columns: Columns;
    try {
      columns = columnsOf(item, item.source);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      result.rejected.push({ source: item.source, reason: err.message });
      continue;
    }
    const form = formProblem(columns.fields);
    if (form !== null) {
      result.rejected.push({ source: item.source, reason: `${item.source}: ${form}` });
      continue;
    }
    {
      // Duplicate member names are refused whatever the trust (I-JSON); the signature under `registry` only.
      let problem: { reason: string } | null;
      try {
        const parsed = parseStoredCopy(
          { text: item.text ?? null, envelope: item.envelope ?? null },
          item.source,
        );
        problem =
          registry !== null
            ? admissionProblem(parsed, (k) => registry.get(k))
            : parsed.format === 'json-v0.1' && parsed.doc.duplicates.length > 0
              ? { reason: `duplicate member name ${parsed.doc.duplicates[0]} (I-JSON refuses it)` }
              : null;
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        problem = { reason: err.message };
      }
      if (problem !== null) {
        result.rejected.push({ source: item.source, reason: `${item.source}: ${problem.reason}` });
        continue;
      }
    }
    const id = columns.fields.manifestId;
    const earlier = candidates.get(id);
    if (earlier) {
      if (sameCopy(earlier, item)) result.duplicates++;
      else
        result.rejected.push({
          source: item.source,
          reason: conflictReason(id, `${earlier.source} in this import`),
        });
      continue;
    }
    candidates.set(id, { ...item, ...columns });
  }
  if (candidates.size === 0) return result;
  const rows = [...candidates.values()];
  await atomically(q, async (client) => {
    // No conflict target: a clash on manifest_id or on the one-twin index on previous_manifest_id
    // skips the row, and the lookups below say which.
    const inserted = await client.query<{ manifest_id: string }>(
      `INSERT INTO manifests (manifest_id, agent_id, key_id, issued_at, expires_at, previous_manifest_id, text, envelope, version, status)
       SELECT r.id, r.agent_id, r.key_id, r.issued_at, r.expires_at, r.previous_manifest_id, r.text,
              decode(r.envelope_hex, 'hex'), CASE WHEN r.envelope_hex IS NULL THEN '0.1' ELSE '0.2' END,
              CASE WHEN EXISTS (SELECT 1 FROM revocations v WHERE v.manifest_id = r.id) THEN 'revoked'
                   WHEN $9 THEN 'quarantined' ELSE 'active' END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $8::text[])
           AS r(id, agent_id, key_id, issued_at, expires_at, previous_manifest_id, text, envelope_hex)
       ON CONFLICT DO NOTHING
       RETURNING manifest_id`,
      [
        rows.map((r) => r.fields.manifestId),
        rows.map((r) => r.fields.agentId),
        rows.map((r) => r.fields.keyId),
        rows.map((r) => r.issuedAt),
        rows.map((r) => r.expiresAt),
        rows.map((r) => r.fields.previousManifestId),
        rows.map((r) => r.text ?? null),
        // bytea[] through unnest would be sent as escaped text anyway; hex is compact and exact.
        rows.map((r) => (r.envelope ? Buffer.from(r.envelope).toString('hex') : null)),
        verify === 'quarantine',
      ],
    );
    result.imported = inserted.rowCount ?? 0;
    const done = new Set(inserted.rows.map((r) => r.manifest_id));
    const skipped = rows.filter((r) => !done.has(r.fields.manifestId));
    if (skipped.length === 0) return;
    const existing = await client.query<{
      manifest_id: string;
      text: string | null;
      envelope: Uint8Array | null;
      previous_manifest_id: string | null;
    }>(
      `SELECT manifest_id, text, envelope, previous_manifest_id FROM manifests
        WHERE manifest_id = ANY($1::text[]) OR previous_manifest_id = ANY($2::text[])`,
      [
        skipped.map((r) => r.fields.manifestId),
        skipped.map((r) => r.fields.previousManifestId).filter(Boolean),
      ],
    );
    const byId = new Map(existing.rows.map((r) => [r.manifest_id, r]));
    const byPrevious = new Map(existing.rows.map((r) => [r.previous_manifest_id, r]));
    for (const r of skipped) {
      const id = r.fields.manifestId;
      const stored = byId.get(id);
      if (stored) {
        if (sameCopy(stored, r)) result.duplicates++;
        else result.rejected.push({ source: r.source, reason: conflictReason(id, 'the store') });
        continue;
      }
      const twin = byPrevious.get(r.fields.previousManifestId);
      result.rejected.push({
        source: r.source,
        reason: twin
          ? `manifest_id ${id}: previous_manifest_id ${r.fields.previousManifestId} already has a successor (${twin.manifest_id}); a manifest has at most one`
          : `manifest_id ${id}: conflicts with a manifest imported at the same time`,
      });
    }
  });
  return result;
}

function conflictReason(id: string, where: string): string {
  return `manifest_id ${id} is already in ${where} with a different copy (text or envelope); a stored manifest is never overwritten`;
}

export type InsertOptions = ManifestCopy & {
  status?: ManifestStatus;
  /** Links a twin to its predecessor when the text itself does not name it; must agree if it does. */
  previousManifestId?: string | null;
  source?: string;
};

/**
 * Stores one manifest (a re-issued twin, typically). Idempotent: the identical text already
 * stored returns `inserted: false`. A different text under the same manifest_id, or a second twin
 * for the same predecessor, throws (MANIFEST_CONFLICT, MANIFEST_TWIN_EXISTS).
 */
export async function insertManifest(
  q: Queryable,
  opts: InsertOptions,
): Promise<{ inserted: boolean; manifestId: string; previousManifestId: string | null }> {
  const { fields, issuedAt, expiresAt } = columnsOf(opts, opts.source);
  const fromText = fields.previousManifestId;
  if (opts.previousManifestId && fromText && opts.previousManifestId !== fromText) {
    throw new UsageError(
      `manifest_id ${fields.manifestId}: previous_manifest_id in the text (${fromText}) differs from ${opts.previousManifestId}`,
      'MANIFEST_PREVIOUS_MISMATCH',
    );
  }
  const previousManifestId = fromText ?? opts.previousManifestId ?? null;
  const status = checkStatus(opts.status ?? 'active');
  // No conflict target: a clash on manifest_id or on the one-twin index skips the row, and the
  // lookups below say which (an error here would abort the caller's transaction).
  const { rowCount } = await q.query(
    `INSERT INTO manifests (manifest_id, agent_id, key_id, issued_at, expires_at, previous_manifest_id, text, envelope, version, status)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
    [
      fields.manifestId,
      fields.agentId,
      fields.keyId,
      issuedAt,
      expiresAt,
      previousManifestId,
      opts.text ?? null,
      opts.envelope ? Buffer.from(opts.envelope) : null,
      versionOf(opts),
      status,
    ],
  );
  if (rowCount === 1) return { inserted: true, manifestId: fields.manifestId, previousManifestId };
  const stored = await getManifest(q, fields.manifestId);
  if (stored) {
    if (!sameCopy(stored, opts))
      throw new RotorError(conflictReason(fields.manifestId, 'the store'), 'MANIFEST_CONFLICT');
    return { inserted: false, manifestId: fields.manifestId, previousManifestId: stored.previousManifestId };
  }
  const twin = previousManifestId ? await successorOf(q, previousManifestId) : null;
  throw new RotorError(
    `manifest ${previousManifestId} already has a successor (${twin?.manifestId ?? 'being stored concurrently'}); ` +
      `not storing a second one (${fields.manifestId}): look it up with successorOf before re-issuing`,
    'MANIFEST_TWIN_EXISTS',
  );
}

export type TwinRow = ManifestCopy & {
  manifestId: string;
  previousManifestId: string;
  /** The new signature's key_id. */
  keyId: string;
  issuedAt: Date;
};

/**
 * Stores re-issued twins in one statement. A twin carries its predecessor's agent_id and
 * expires_at unchanged (re-issue keeps every other member), so those columns are copied from the
 * predecessor's row instead of parsing the text again. A twin whose id or predecessor is already
 * taken is skipped (the one-twin index makes retries harmless); returns how many were stored.
 */
export async function insertTwins(q: Queryable, twins: TwinRow[]): Promise<number> {
  if (twins.length === 0) return 0;
  // One parameter per value rather than text[] arrays: pg would escape every manifest text into
  // an array literal on this (the signing) thread.
  const params: unknown[] = [];
  const rows = twins.map((t) => {
    params.push(
      t.manifestId,
      t.previousManifestId,
      t.keyId,
      t.issuedAt,
      t.text ?? null,
      t.envelope ? Buffer.from(t.envelope) : null,
      versionOf(t),
    );
    const n = params.length;
    return `($${n - 6}, $${n - 5}, $${n - 4}, $${n - 3}::timestamptz, $${n - 2}::text, $${n - 1}::bytea, $${n}::text)`;
  });
  const { rowCount } = await q.query(
    `INSERT INTO manifests (manifest_id, agent_id, key_id, issued_at, expires_at, previous_manifest_id, text, envelope, version, status)
     SELECT t.manifest_id, o.agent_id, t.key_id, t.issued_at, o.expires_at, t.previous_manifest_id, t.text, t.envelope, t.version, 'active'
       FROM (VALUES ${rows.join(', ')}) AS t(manifest_id, previous_manifest_id, key_id, issued_at, text, envelope, version)
       JOIN manifests o ON o.manifest_id = t.previous_manifest_id
     ON CONFLICT DO NOTHING`,
    params,
  );
  return rowCount ?? 0;
}

export interface ManifestFilter {
  keyId?: string;
  status?: ManifestStatus;
  version?: ManifestVersion;
  /** Only manifests no twin was re-issued from yet. */
  withoutSuccessor?: boolean;
  /** Only manifests after this manifest_id (keyset order). */
  afterManifestId?: string | null;
  /** Only manifests the rotation run with this run id has not declined (the recount). */
  notDeclinedInRun?: string;
}

function where(filter: ManifestFilter, params: unknown[]): string[] {
  const conditions: string[] = [];
  if (filter.keyId !== undefined) {
    params.push(filter.keyId);
    conditions.push(`key_id = $${params.length}`);
  }
  if (filter.status !== undefined) {
    params.push(checkStatus(filter.status));
    conditions.push(`status = $${params.length}`);
  }
  if (filter.version !== undefined) {
    params.push(checkVersion(filter.version));
    conditions.push(`version = $${params.length}`);
  }
  if (filter.withoutSuccessor) {
    conditions.push(
      'NOT EXISTS (SELECT 1 FROM manifests s WHERE s.previous_manifest_id = manifests.manifest_id)',
    );
  }
  if (filter.afterManifestId) {
    params.push(filter.afterManifestId);
    conditions.push(`manifest_id > $${params.length}`);
  }
  if (filter.notDeclinedInRun !== undefined) {
    params.push(filter.notDeclinedInRun);
    conditions.push(
      `NOT EXISTS (SELECT 1 FROM rotation_declined d WHERE d.run_id = $${params.length} AND d.manifest_id = manifests.manifest_id)`,
    );
  }
  return conditions;
}

export async function countManifests(q: Queryable, filter: ManifestFilter = {}): Promise<number> {
  const params: unknown[] = [];
  const conditions = where(filter, params);
  const { rows } = await q.query<{ n: string }>(
    `SELECT count(*) AS n FROM manifests${conditions.length ? ` WHERE ${conditions.join(' AND ')}` : ''}`,
    params,
  );
  return Number(rows[0]!.n);
}

export interface PageQuery extends ManifestFilter {
  limit: number;
}

export interface ManifestPageRow {
  manifestId: string;
  version: ManifestVersion;
  /** v0.1 JSON text (null for v0.2). */
  text: string | null;
  /** v0.2 COSE envelope (null for v0.1). */
  envelope: Uint8Array | null;
  keyId: string | null;
  /** When the manifest entered the store (the compromise cut-off reads it). */
  storedAt: Date;
}

/** One page in manifest_id order (keyset pagination: stable while rows are added or change status). */
export async function pageManifests(q: Queryable, query: PageQuery): Promise<ManifestPageRow[]> {
  const params: unknown[] = [];
  const conditions = where(query, params);
  params.push(query.limit);
  const { rows } = await q.query<{
    manifest_id: string;
    version: ManifestVersion;
    text: string | null;
    envelope: Buffer | null;
    key_id: string | null;
    stored_at: Date;
  }>(
    `SELECT manifest_id, version, text, envelope, key_id, stored_at FROM manifests
      ${conditions.length ? `WHERE ${conditions.join(' AND ')}` : ''}
      ORDER BY manifest_id LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => ({
    manifestId: r.manifest_id,
    version: r.version,
    text: r.text,
    envelope: r.envelope === null ? null : new Uint8Array(r.envelope),
    keyId: r.key_id,
    storedAt: r.stored_at,
  }));
}

interface ManifestRow {
  manifest_id: string;
  agent_id: string | null;
  key_id: string | null;
  issued_at: Date | null;
  expires_at: Date | null;
  status: ManifestStatus;
  previous_manifest_id: string | null;
  version: ManifestVersion;
  text: string | null;
  envelope: Buffer | null;
  stored_at: Date;
}

function toStored(r: ManifestRow): StoredManifest {
  return {
    manifestId: r.manifest_id,
    agentId: r.agent_id,
    keyId: r.key_id,
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    status: r.status,
    previousManifestId: r.previous_manifest_id,
    version: r.version,
    text: r.text,
    envelope: r.envelope === null ? null : new Uint8Array(r.envelope),
    storedAt: r.stored_at,
  };
}

const COLUMNS =
  'manifest_id, agent_id, key_id, issued_at, expires_at, status, previous_manifest_id, version, text, envelope, stored_at';

export async function getManifest(q: Queryable, manifestId: string): Promise<StoredManifest | null> {
  const { rows } = await q.query<ManifestRow>(`SELECT ${COLUMNS} FROM manifests WHERE manifest_id = $1`, [
    manifestId,
  ]);
  return rows[0] ? toStored(rows[0]) : null;
}

/** The manifest re-issued from `manifestId` (its twin), if one is stored. */
export async function successorOf(q: Queryable, manifestId: string): Promise<StoredManifest | null> {
  const { rows } = await q.query<ManifestRow>(
    `SELECT ${COLUMNS} FROM manifests WHERE previous_manifest_id = $1`,
    [manifestId],
  );
  return rows[0] ? toStored(rows[0]) : null;
}

/** Sets the status of the named manifests; returns how many changed. Unknown ids are ignored. */
export async function setStatus(
  q: Queryable,
  manifestIds: string[],
  status: ManifestStatus,
): Promise<number> {
  // Revoked is final: a stale attempt of an earlier step (a re-sign batch that commits after the
  // step was taken over and the rotation moved on to revoke) must never mark a revoked manifest
  // superseded or active again (test/faults/concurrent-attempts.test.ts).
  const { rowCount } = await q.query(
    `UPDATE manifests SET status = $2, status_changed_at = now()
      WHERE manifest_id = ANY($1::text[]) AND status <> $2 AND status <> 'revoked'`,
    [manifestIds, checkStatus(status)],
  );
  return rowCount ?? 0;
}

export interface KeyStats {
  keyId: string | null;
  status: ManifestStatus;
  count: number;
}

export async function statsByKey(q: Queryable): Promise<KeyStats[]> {
  const { rows } = await q.query<{ key_id: string | null; status: ManifestStatus; n: string }>(
    'SELECT key_id, status, count(*) AS n FROM manifests GROUP BY key_id, status ORDER BY key_id NULLS LAST, status',
  );
  return rows.map((r) => ({ keyId: r.key_id, status: r.status, count: Number(r.n) }));
}

export interface VersionStats {
  version: ManifestVersion;
  status: ManifestStatus;
  count: number;
}

/** Counts per manifest version and status (how far the migration to v0.2 has come). */
export async function statsByVersion(q: Queryable): Promise<VersionStats[]> {
  const { rows } = await q.query<{ version: ManifestVersion; status: ManifestStatus; n: string }>(
    'SELECT version, status, count(*) AS n FROM manifests GROUP BY version, status ORDER BY version, status',
  );
  return rows.map((r) => ({ version: r.version, status: r.status, count: Number(r.n) }));
}
