/**
 * Manifest delivery: the credentials agents fetch with, which re-issued keys are released for
 * delivery, what each agent is handed, and who picked up their twin. Schema:
 * `migrations/070_manifest_delivery.sql`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { RotorError, UsageError } from '../errors';
import type { Queryable } from './queryable';

// ---- credentials -------------------------------------------------------------------------------

export type CredentialKind = 'agent' | 'deployment';

export interface DeliveryCredential {
  credentialId: string;
  kind: CredentialKind;
  agentId: string | null;
  agentPrefixes: string[];
  label: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** `rdc_<credential_id>_<secret>`: the id finds the row, the secret is checked against its hash. */
const TOKEN = /^rdc_([a-z0-9]{8,32})_([A-Za-z0-9_-]{43})$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export interface CreateCredentialInput {
  kind: CredentialKind;
  agentId?: string;
  agentPrefixes?: string[];
  label?: string;
}

/** Stores a new credential and returns its token: shown once, never stored. */
export async function createCredential(
  q: Queryable,
  input: CreateCredentialInput,
): Promise<{ credential: DeliveryCredential; token: string }> {
  if (input.kind === 'agent') {
    if (!input.agentId) throw new UsageError('an agent credential needs --agent AGENT_ID');
    if (input.agentPrefixes?.length)
      throw new UsageError('an agent credential names one agent; use a deployment credential for prefixes');
  } else if (input.kind === 'deployment') {
    if (!input.agentPrefixes?.length)
      throw new UsageError('a deployment credential needs at least one --agent-prefix PREFIX');
    if (input.agentId) throw new UsageError('a deployment credential takes --agent-prefix, not --agent');
    for (const p of input.agentPrefixes) {
      if (p.length === 0) throw new UsageError('--agent-prefix must not be empty');
    }
  } else {
    throw new UsageError(`credential kind must be agent or deployment, got '${String(input.kind)}'`);
  }
  const credentialId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const { rows } = await q.query<CredentialRow>(
    `INSERT INTO delivery_credentials (credential_id, kind, agent_id, agent_prefixes, label, secret_sha256)
     VALUES ($1, $2, $3, $4::text[], $5, $6) RETURNING ${CREDENTIAL_COLUMNS}`,
    [
      credentialId,
      input.kind,
      input.kind === 'agent' ? input.agentId : null,
      input.kind === 'deployment' ? input.agentPrefixes : [],
      input.label ?? '',
      sha256(secret),
    ],
  );
  return { credential: toCredential(rows[0]!), token: `rdc_${credentialId}_${secret}` };
}

interface CredentialRow {
  credential_id: string;
  kind: CredentialKind;
  agent_id: string | null;
  agent_prefixes: string[];
  label: string;
  created_at: Date;
  revoked_at: Date | null;
}

const CREDENTIAL_COLUMNS = 'credential_id, kind, agent_id, agent_prefixes, label, created_at, revoked_at';

function toCredential(r: CredentialRow): DeliveryCredential {
  return {
    credentialId: r.credential_id,
    kind: r.kind,
    agentId: r.agent_id,
    agentPrefixes: r.agent_prefixes,
    label: r.label,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}

/**
 * The credential a bearer token names, when its secret matches and it is not revoked; otherwise
 * null (the caller answers 401 without saying which part was wrong).
 */
export async function authenticateToken(q: Queryable, token: string): Promise<DeliveryCredential | null> {
  const m = TOKEN.exec(token);
  if (!m) return null;
  const { rows } = await q.query<CredentialRow & { secret_sha256: Buffer }>(
    `SELECT ${CREDENTIAL_COLUMNS}, secret_sha256 FROM delivery_credentials WHERE credential_id = $1`,
    [m[1]],
  );
  const row = rows[0];
  // Hash and compare even for an unknown id, so timing does not tell ids apart.
  const presented = sha256(m[2]!);
  const stored = row?.secret_sha256 ?? Buffer.alloc(32);
  const match = timingSafeEqual(presented, stored);
  if (!row || !match || row.revoked_at !== null) return null;
  return toCredential(row);
}

export function credentialCovers(credential: DeliveryCredential, agentId: string): boolean {
  if (credential.kind === 'agent') return credential.agentId === agentId;
  return credential.agentPrefixes.some((p) => agentId.startsWith(p));
}

export async function listCredentials(q: Queryable): Promise<DeliveryCredential[]> {
  const { rows } = await q.query<CredentialRow>(
    `SELECT ${CREDENTIAL_COLUMNS} FROM delivery_credentials ORDER BY created_at, credential_id`,
  );
  return rows.map(toCredential);
}

export async function revokeCredential(q: Queryable, credentialId: string): Promise<DeliveryCredential> {
  const { rows } = await q.query<CredentialRow>(
    `UPDATE delivery_credentials SET revoked_at = coalesce(revoked_at, now())
      WHERE credential_id = $1 RETURNING ${CREDENTIAL_COLUMNS}`,
    [credentialId],
  );
  if (!rows[0]) {
    throw new RotorError(
      `no delivery credential ${credentialId}: list them with rotor delivery credential list`,
      'DELIVERY_CREDENTIAL_UNKNOWN',
    );
  }
  return toCredential(rows[0]);
}

// ---- releases ----------------------------------------------------------------------------------

export interface ReleaseInput {
  keyId: string;
  identity: string;
  anchorVersion: number | null;
  workflowId: string;
  reason: string;
}

export interface ReleaseRecord extends ReleaseInput {
  state: 'released' | 'withdrawn';
  releasedAt: Date;
  withdrawnAt: Date | null;
}

/** Releases a key's twins for delivery. Idempotent: a second release keeps the first one's time. */
export async function releaseKey(q: Queryable, input: ReleaseInput): Promise<ReleaseRecord> {
  const { rows } = await q.query<ReleaseRow>(
    `INSERT INTO delivery_releases (key_id, identity, state, anchor_version, workflow_id, reason)
     VALUES ($1, $2, 'released', $3, $4, $5)
     ON CONFLICT (key_id) DO UPDATE SET
       state = 'released',
       withdrawn_at = NULL,
       released_at = CASE WHEN delivery_releases.state = 'released' THEN delivery_releases.released_at ELSE now() END
     RETURNING ${RELEASE_COLUMNS}`,
    [input.keyId, input.identity, input.anchorVersion, input.workflowId, input.reason],
  );
  return toRelease(rows[0]!);
}

/** Stops handing out a key's twins (a rolled-back key): agents fall back to what else is valid. */
export async function withdrawKey(q: Queryable, keyId: string): Promise<void> {
  await q.query(
    `UPDATE delivery_releases SET state = 'withdrawn', withdrawn_at = coalesce(withdrawn_at, now())
      WHERE key_id = $1`,
    [keyId],
  );
}

interface ReleaseRow {
  key_id: string;
  identity: string;
  state: 'released' | 'withdrawn';
  anchor_version: number | null;
  workflow_id: string;
  reason: string;
  released_at: Date;
  withdrawn_at: Date | null;
}

const RELEASE_COLUMNS =
  'key_id, identity, state, anchor_version, workflow_id, reason, released_at, withdrawn_at';

function toRelease(r: ReleaseRow): ReleaseRecord {
  return {
    keyId: r.key_id,
    identity: r.identity,
    state: r.state,
    anchorVersion: r.anchor_version,
    workflowId: r.workflow_id,
    reason: r.reason,
    releasedAt: r.released_at,
    withdrawnAt: r.withdrawn_at,
  };
}

export async function getRelease(q: Queryable, keyId: string): Promise<ReleaseRecord | null> {
  const { rows } = await q.query<ReleaseRow>(
    `SELECT ${RELEASE_COLUMNS} FROM delivery_releases WHERE key_id = $1`,
    [keyId],
  );
  return rows[0] ? toRelease(rows[0]) : null;
}

// ---- what an agent is handed ---------------------------------------------------------------------

export interface DeliverableManifest {
  manifestId: string;
  keyId: string | null;
  previousManifestId: string | null;
  status: 'active' | 'superseded';
  /** v0.1: the JSON text (null for v0.2). */
  text: string | null;
  /** v0.2: the COSE envelope bytes (null for v0.1). */
  envelope: Uint8Array | null;
}

/**
 * The agent's current manifest: its newest manifest that is not revoked and is deliverable (an
 * original, or a twin whose key is released). Before release that is the original, superseded
 * in the store but valid until revocation; after release, the twin.
 */
export async function currentManifestFor(q: Queryable, agentId: string): Promise<DeliverableManifest | null> {
  const { rows } = await q.query<{
    manifest_id: string;
    key_id: string | null;
    previous_manifest_id: string | null;
    status: 'active' | 'superseded';
    text: string | null;
    envelope: Buffer | null;
  }>(
    `SELECT m.manifest_id, m.key_id, m.previous_manifest_id, m.status, m.text, m.envelope
       FROM manifests m
      WHERE m.agent_id = $1 AND m.status <> 'revoked'
        AND (m.expires_at IS NULL OR m.expires_at > now())
        AND (m.previous_manifest_id IS NULL OR EXISTS (
              SELECT 1 FROM delivery_releases r WHERE r.key_id = m.key_id AND r.state = 'released'))
      ORDER BY m.issued_at DESC NULLS LAST, m.stored_at DESC
      LIMIT 1`,
    [agentId],
  );
  const r = rows[0];
  return r
    ? {
        manifestId: r.manifest_id,
        keyId: r.key_id,
        previousManifestId: r.previous_manifest_id,
        status: r.status,
        text: r.text,
        envelope: r.envelope === null ? null : new Uint8Array(r.envelope),
      }
    : null;
}

export interface FetchRecord {
  agentId: string;
  credentialId: string;
  manifestId: string;
  keyId: string | null;
  /** A twin (re-issued manifest): the fetch is its pickup. */
  isTwin: boolean;
}

/** Records a fetch: the agent was seen, and a twin's fetch is its pickup. One statement. */
export async function recordFetch(q: Queryable, f: FetchRecord): Promise<void> {
  await q.query(
    `WITH seen AS (
       INSERT INTO delivery_agents (agent_id, first_seen_at, last_seen_at, last_manifest_id, last_credential_id)
       VALUES ($1, now(), now(), $3, $2)
       ON CONFLICT (agent_id) DO UPDATE SET last_seen_at = now(),
         last_manifest_id = EXCLUDED.last_manifest_id, last_credential_id = EXCLUDED.last_credential_id
     )
     INSERT INTO manifest_pickups (manifest_id, agent_id, key_id, credential_id, first_fetched_at, last_fetched_at)
     SELECT $3, $1, $4, $2, now(), now() WHERE $5::boolean AND $4::text IS NOT NULL
     ON CONFLICT (manifest_id) DO UPDATE SET last_fetched_at = now(), fetches = manifest_pickups.fetches + 1`,
    [f.agentId, f.credentialId, f.manifestId, f.keyId, f.isTwin],
  );
}

// ---- pickup of one key's twins -------------------------------------------------------------------

export interface PickupCounts {
  /** Twins of the key that are active (its agents' current manifests). */
  twins: number;
  /** Of those, fetched by their agent at least once. */
  pickedUp: number;
  /** Not fetched, but the agent has fetched something (it knows the endpoint). */
  seenNotPickedUp: number;
  /** Not fetched, and the agent was never seen fetching anything. */
  neverSeen: number;
}

export async function pickupCounts(q: Queryable, keyId: string): Promise<PickupCounts> {
  const { rows } = await q.query<{ twins: string; picked: string; seen: string; never: string }>(
    `SELECT count(*) AS twins,
            count(p.manifest_id) AS picked,
            count(*) FILTER (WHERE p.manifest_id IS NULL AND a.agent_id IS NOT NULL) AS seen,
            count(*) FILTER (WHERE p.manifest_id IS NULL AND a.agent_id IS NULL) AS never
       FROM manifests m
       LEFT JOIN manifest_pickups p ON p.manifest_id = m.manifest_id
       LEFT JOIN delivery_agents a ON a.agent_id = m.agent_id
      WHERE m.key_id = $1 AND m.previous_manifest_id IS NOT NULL AND m.status = 'active'`,
    [keyId],
  );
  const r = rows[0]!;
  return {
    twins: Number(r.twins),
    pickedUp: Number(r.picked),
    seenNotPickedUp: Number(r.seen),
    neverSeen: Number(r.never),
  };
}

/** Agents seen fetching that have not picked up their twin of `keyId` yet, a few, for messages. */
export async function agentsBehind(q: Queryable, keyId: string, limit: number): Promise<string[]> {
  const { rows } = await q.query<{ agent_id: string }>(
    `SELECT m.agent_id FROM manifests m JOIN delivery_agents a ON a.agent_id = m.agent_id
      WHERE m.key_id = $1 AND m.previous_manifest_id IS NOT NULL AND m.status = 'active'
        AND NOT EXISTS (SELECT 1 FROM manifest_pickups p WHERE p.manifest_id = m.manifest_id)
      ORDER BY m.agent_id LIMIT $2`,
    [keyId, limit],
  );
  return rows.map((r) => r.agent_id);
}

// ---- outbound webhook --------------------------------------------------------------------------

export interface DeliveryWebhook {
  identity: string;
  url: string;
  /** HMAC-SHA256 key; never logged. */
  secret: string;
  batchSize: number;
}

export async function setWebhook(q: Queryable, hook: DeliveryWebhook): Promise<void> {
  let url: URL;
  try {
    url = new URL(hook.url);
  } catch {
    throw new UsageError(`webhook URL ${JSON.stringify(hook.url.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UsageError(`webhook URL ${hook.url} must be http or https`);
  if (hook.secret.length < 16) throw new UsageError('the webhook secret must be at least 16 characters');
  if (!Number.isInteger(hook.batchSize) || hook.batchSize < 1 || hook.batchSize > 10_000)
    throw new UsageError(`--batch-size must be 1 to 10000, got ${hook.batchSize}`);
  await q.query(
    `INSERT INTO delivery_webhooks (identity, url, secret, batch_size) VALUES ($1, $2, $3, $4)
     ON CONFLICT (identity) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, batch_size = EXCLUDED.batch_size`,
    [hook.identity, hook.url, hook.secret, hook.batchSize],
  );
}

export async function getWebhook(q: Queryable, identity: string): Promise<DeliveryWebhook | null> {
  const { rows } = await q.query<{ identity: string; url: string; secret: string; batch_size: number }>(
    'SELECT identity, url, secret, batch_size FROM delivery_webhooks WHERE identity = $1',
    [identity],
  );
  const r = rows[0];
  return r ? { identity: r.identity, url: r.url, secret: r.secret, batchSize: r.batch_size } : null;
}

export async function deleteWebhook(q: Queryable, identity: string): Promise<boolean> {
  const { rowCount } = await q.query('DELETE FROM delivery_webhooks WHERE identity = $1', [identity]);
  return (rowCount ?? 0) > 0;
}

/** One page of a key's twins, (agent_id, manifest_id), in manifest_id order. */
export async function twinsPage(
  q: Queryable,
  keyId: string,
  offset: number,
  limit: number,
): Promise<{ agentId: string; manifestId: string }[]> {
  const { rows } = await q.query<{ agent_id: string; manifest_id: string }>(
    `SELECT agent_id, manifest_id FROM manifests
      WHERE key_id = $1 AND previous_manifest_id IS NOT NULL AND status = 'active' AND agent_id IS NOT NULL
      ORDER BY manifest_id OFFSET $2 LIMIT $3`,
    [keyId, offset, limit],
  );
  return rows.map((r) => ({ agentId: r.agent_id, manifestId: r.manifest_id }));
}

export async function sentBatches(q: Queryable, keyId: string): Promise<Set<number>> {
  const { rows } = await q.query<{ batch_no: number }>(
    `SELECT batch_no FROM delivery_webhook_batches WHERE key_id = $1 AND status = 'sent'`,
    [keyId],
  );
  return new Set(rows.map((r) => r.batch_no));
}

export async function recordBatch(
  q: Queryable,
  b: {
    keyId: string;
    batchNo: number;
    identity: string;
    agents: number;
    status: 'sent' | 'failed';
    attempts: number;
    httpStatus: number | null;
    lastError: string | null;
  },
): Promise<void> {
  await q.query(
    `INSERT INTO delivery_webhook_batches (key_id, batch_no, identity, agents, status, attempts, http_status, last_error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (key_id, batch_no) DO UPDATE SET status = EXCLUDED.status,
       attempts = delivery_webhook_batches.attempts + EXCLUDED.attempts,
       http_status = EXCLUDED.http_status, last_error = EXCLUDED.last_error, updated_at = now()`,
    [b.keyId, b.batchNo, b.identity, b.agents, b.status, b.attempts, b.httpStatus, b.lastError],
  );
}
