/**
 * Versioned trust anchor documents, per signing identity. Versions are monotonic and each row is
 * immutable; the text is stored exactly as served, and the strong ETag is derived from its bytes.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors';
import {
  buildTrustAnchor,
  type TrustAnchorDocument,
  type TrustAnchorKeyInput,
  validateTrustAnchor,
} from '../manifest';
import { atomically, type Queryable } from './queryable';

export interface PublishedTrustAnchor {
  identity: string;
  version: number;
  etag: string;
  document: TrustAnchorDocument;
  /** The exact bytes served at /.well-known/agent-manifest/trust-anchor. */
  text: string;
  publishedAt: Date;
}

export interface TrustAnchorInput {
  /** Bare lowercase hex. */
  activeKeyId: string;
  keys: TrustAnchorKeyInput[];
}

interface AnchorRow {
  identity: string;
  version: number;
  etag: string;
  text: string;
  published_at: Date;
}

function toPublished(r: AnchorRow): PublishedTrustAnchor {
  return {
    identity: r.identity,
    version: r.version,
    etag: r.etag,
    document: validateTrustAnchor(JSON.parse(r.text)),
    text: r.text,
    publishedAt: r.published_at,
  };
}

function etagOf(version: number, text: string): string {
  return `"v${version}-${createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32)}"`;
}

/** The document without its version, for "is this what is already published?" */
function contentOf(doc: TrustAnchorDocument): string {
  const { version: _version, ...rest } = doc;
  return JSON.stringify(rest);
}

/**
 * Publishes a new version for `identity`, unless the current version already says exactly this
 * (a retried activity then gets the existing version back, `published: false`).
 */
export async function publishTrustAnchor(
  q: Queryable,
  identity: string,
  input: TrustAnchorInput,
): Promise<PublishedTrustAnchor & { published: boolean }> {
  if (!identity)
    throw new UsageError('a trust anchor needs a signing identity name', 'TRUST_ANCHOR_IDENTITY');
  // Validates keys and timestamps before any SQL runs.
  const draft = buildTrustAnchor({ ...input, version: 1 });
  return atomically(q, async (client) => {
    // Serialises publishers of one identity until the outermost commit, so versions never collide.
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('rotor.trust_anchor:' || $1, 0))", [
      identity,
    ]);
    const current = await currentTrustAnchor(client, identity);
    if (current && contentOf(current.document) === contentOf(draft)) return { ...current, published: false };
    const version = (current?.version ?? 0) + 1;
    const document = buildTrustAnchor({ ...input, version });
    const text = `${JSON.stringify(document, null, 2)}\n`;
    const { rows } = await client.query<AnchorRow>(
      `INSERT INTO trust_anchors (identity, version, text, etag, active_key_id)
       VALUES ($1, $2, $3, $4, $5) RETURNING identity, version, etag, text, published_at`,
      [identity, version, text, etagOf(version, text), input.activeKeyId],
    );
    return { ...toPublished(rows[0]!), published: true };
  });
}

const SELECT = 'SELECT identity, version, etag, text, published_at FROM trust_anchors';

export async function currentTrustAnchor(
  q: Queryable,
  identity: string,
): Promise<PublishedTrustAnchor | null> {
  const { rows } = await q.query<AnchorRow>(`${SELECT} WHERE identity = $1 ORDER BY version DESC LIMIT 1`, [
    identity,
  ]);
  return rows[0] ? toPublished(rows[0]) : null;
}

export async function trustAnchorVersion(
  q: Queryable,
  identity: string,
  version: number,
): Promise<PublishedTrustAnchor | null> {
  const { rows } = await q.query<AnchorRow>(`${SELECT} WHERE identity = $1 AND version = $2`, [
    identity,
    version,
  ]);
  return rows[0] ? toPublished(rows[0]) : null;
}

/** Only what the HTTP service sends, without re-validating the document on every request. */
export async function currentTrustAnchorServed(
  q: Queryable,
  identity: string,
): Promise<{ version: number; etag: string; text: string } | null> {
  const { rows } = await q.query<{ version: number; etag: string; text: string }>(
    'SELECT version, etag, text FROM trust_anchors WHERE identity = $1 ORDER BY version DESC LIMIT 1',
    [identity],
  );
  return rows[0] ?? null;
}
