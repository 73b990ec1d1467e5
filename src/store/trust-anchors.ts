/**
 * Versioned trust anchor documents, per signing identity. Versions are monotonic and each row is
 * immutable; the text is stored exactly as served, and the strong ETag is derived from its bytes.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors';
import {
  b64urlEncode,
  buildTrustAnchor,
  formatUtcSeconds,
  type RootSet,
  rootSetJson,
  type SignedAnchorPayload,
  sha256Hex,
  type TrustAnchorDocument,
  type TrustAnchorKeyInput,
  unverifiedAnchorPayload,
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
  /** The JWS served at trust-anchor.jws; null for a version published unsigned. */
  jws: string | null;
  jwsSha256: string | null;
  expiresAt: Date | null;
  rootVersion: number | null;
}

/**
 * How a version gets signed: the root set it names, the revocation key it lists, its lifetime,
 * and a callback that signs the payload bytes (the activity holds the custodian; the store never
 * sees a key). Signing runs inside the publishing transaction, so a version is never stored
 * without its signatures.
 */
export interface AnchorSigning {
  root: { version: number; set: RootSet };
  revocationKey?: { keyId: string; publicKey: Uint8Array };
  lifetimeSeconds: number;
  /** Publish a new version even if the content is unchanged, when the current one expires before this. */
  renewIfExpiresBefore?: Date;
  /** Returns the JWS over `payload`; `previousRootVersion` is the root set of the version before. */
  sign(payload: Uint8Array, ctx: { previousRootVersion: number | null; version: number }): Promise<string>;
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
  jws: string | null;
  jws_sha256: string | null;
  expires_at: Date | null;
  root_version: number | null;
}

function toPublished(r: AnchorRow): PublishedTrustAnchor {
  return {
    identity: r.identity,
    version: r.version,
    etag: r.etag,
    document: validateTrustAnchor(JSON.parse(r.text)),
    text: r.text,
    publishedAt: r.published_at,
    jws: r.jws,
    jwsSha256: r.jws_sha256,
    expiresAt: r.expires_at,
    rootVersion: r.root_version,
  };
}

/** What the signed form says beyond the plain document, for "is this already published?" */
function signedContentOf(
  row: { jws: string | null; root_version: number | null } | null,
  signing: AnchorSigning | undefined,
): string {
  if (signing) {
    return JSON.stringify([
      signing.root.version,
      rootSetJson(signing.root.set),
      signing.revocationKey?.keyId ?? null,
    ]);
  }
  if (!row?.jws) return 'unsigned';
  const payload = unverifiedAnchorPayload(row.jws) as SignedAnchorPayload;
  // The set's version is compared as root_version; the payload carries it too since the root chain.
  const { version: _rootVersion, ...root } = payload.root;
  return JSON.stringify([row.root_version, root, payload.revocation_key?.key_id ?? null]);
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
  signing?: AnchorSigning,
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
    const renew =
      signing?.renewIfExpiresBefore !== undefined &&
      current?.expiresAt != null &&
      current.expiresAt.getTime() < signing.renewIfExpiresBefore.getTime();
    if (
      current &&
      !renew &&
      contentOf(current.document) === contentOf(draft) &&
      signedContentOf({ jws: current.jws, root_version: current.rootVersion }, undefined) ===
        signedContentOf(null, signing)
    ) {
      return { ...current, published: false };
    }
    const version = (current?.version ?? 0) + 1;
    const document = buildTrustAnchor({ ...input, version });
    const text = `${JSON.stringify(document, null, 2)}\n`;
    let jws: string | null = null;
    let expiresAt: Date | null = null;
    if (signing) {
      // The database clock, so issued_at orders with published_at.
      const { rows: clock } = await client.query<{ now: Date }>('SELECT now() AS now');
      const issuedAt = clock[0]!.now;
      expiresAt = new Date(issuedAt.getTime() + signing.lifetimeSeconds * 1000);
      const payload: SignedAnchorPayload = {
        version,
        identity,
        issued_at: formatUtcSeconds(issuedAt),
        expires_at: formatUtcSeconds(expiresAt),
        active_key_id: document.active_key_id,
        keys: document.keys,
        // Numbered so a verifier pinned to an older set knows which root chain links to fetch.
        root: { version: signing.root.version, ...rootSetJson(signing.root.set) },
      };
      if (signing.revocationKey) {
        payload.revocation_key = {
          key_id: signing.revocationKey.keyId,
          public_key: b64urlEncode(signing.revocationKey.publicKey),
        };
      }
      jws = await signing.sign(Buffer.from(JSON.stringify(payload), 'utf8'), {
        previousRootVersion: current?.rootVersion ?? null,
        version,
      });
    }
    const { rows } = await client.query<AnchorRow>(
      `INSERT INTO trust_anchors (identity, version, text, etag, active_key_id, jws, jws_sha256, expires_at, root_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLUMNS}`,
      [
        identity,
        version,
        text,
        etagOf(version, text),
        input.activeKeyId,
        jws,
        jws === null ? null : sha256Hex(jws),
        expiresAt,
        signing?.root.version ?? null,
      ],
    );
    return { ...toPublished(rows[0]!), published: true };
  });
}

const COLUMNS = 'identity, version, etag, text, published_at, jws, jws_sha256, expires_at, root_version';
const SELECT = `SELECT ${COLUMNS} FROM trust_anchors`;

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

export interface ServedTrustAnchor {
  version: number;
  etag: string;
  text: string;
  jws: string | null;
  jwsSha256: string | null;
  /** The root set the signed form names; null for an unsigned version. */
  rootVersion: number | null;
}

/** Only what the HTTP service sends, without re-validating the document on every request. */
/** The newest version number of `identity`'s anchor, or null: an index lookup, no text. */
export async function latestAnchorVersion(q: Queryable, identity: string): Promise<number | null> {
  const { rows } = await q.query<{ version: number }>(
    'SELECT version FROM trust_anchors WHERE identity = $1 ORDER BY version DESC LIMIT 1',
    [identity],
  );
  return rows[0]?.version ?? null;
}

export async function currentTrustAnchorServed(
  q: Queryable,
  identity: string,
): Promise<ServedTrustAnchor | null> {
  const { rows } = await q.query<{
    version: number;
    etag: string;
    text: string;
    jws: string | null;
    jws_sha256: string | null;
    root_version: number | null;
  }>(
    'SELECT version, etag, text, jws, jws_sha256, root_version FROM trust_anchors WHERE identity = $1 ORDER BY version DESC LIMIT 1',
    [identity],
  );
  const r = rows[0];
  return r
    ? {
        version: r.version,
        etag: r.etag,
        text: r.text,
        jws: r.jws,
        jwsSha256: r.jws_sha256,
        rootVersion: r.root_version,
      }
    : null;
}

/**
 * The root chain's link for root set `rootVersion`: the first signed anchor naming that set. A
 * root rotation publishes it signed by the outgoing set and the new one (`anchor-root.ts`), and
 * rows never change (migration 003's trigger), so the link is what it was when published.
 */
export async function rootChainLink(
  q: Queryable,
  identity: string,
  rootVersion: number,
): Promise<{ version: number; jws: string; jwsSha256: string } | null> {
  const { rows } = await q.query<{ version: number; jws: string; jws_sha256: string }>(
    `SELECT version, jws, jws_sha256 FROM trust_anchors
      WHERE identity = $1 AND root_version = $2 AND jws IS NOT NULL
      ORDER BY version LIMIT 1`,
    [identity, rootVersion],
  );
  const r = rows[0];
  return r ? { version: r.version, jws: r.jws, jwsSha256: r.jws_sha256 } : null;
}
