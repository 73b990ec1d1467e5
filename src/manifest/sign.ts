/**
 * Signing and re-issue. Both parse the manifest once, build the pre-image from the parsed
 * members, sign through a `Signer`, and splice the changed members into the original text,
 * so every other member keeps its exact bytes.
 */
import { randomFillSync } from 'node:crypto';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, type ParsedDocument, parseDocument } from './json';
import { b64urlEncode } from './keys';
import { SIGNED_FIELDS, signingPreImage } from './preimage';
import type { KeyType, Signer } from './signer';
import { formatValue, isSpaced, type Layout, layoutOf, type MemberEdit, spliceMembers } from './splice';
import { formatUtcSeconds } from './timestamps';

/** The signature block as the SDK writes it, members in its order. */
export interface SignatureBlock {
  algorithm: 'Ed25519';
  key_id: string;
  key_type: KeyType;
  signed_at: string;
  signature_value: string;
  signed_fields: string[];
}

/** Profiles whose manifests an Ed25519 signature cannot sign without a downgrade (AM-VEC-020). */
export const NON_ED25519_PROFILES: ReadonlySet<string> = new Set(['post-quantum', 'hybrid']);

export interface SignOptions {
  signedAt: Date;
  source?: string;
}

export async function signManifest(
  manifestText: string,
  signer: Signer,
  opts: SignOptions,
): Promise<{ text: string; signature: SignatureBlock }> {
  const doc = parseDocument(manifestText, opts.source);
  const root = manifestRoot(doc, opts.source);
  const signature = await signRoot(root, signer, opts.signedAt, opts.source);
  const layout = layoutOf(doc);
  const text = spliceMembers(
    doc,
    [{ key: 'signature', valueText: formatSignatureBlock(signature, layout) }],
    layout,
  );
  return { text, signature };
}

export interface ReissueOptions {
  now: Date;
  /** Defaults to a fresh UUID v7 for `now`. */
  newManifestId?: string;
  source?: string;
}

export interface ReissueResult {
  text: string;
  manifestId: string;
  previousManifestId: string;
  /** True when the manifest carried an `attestation` block, which binds the old document and was dropped. */
  attestationDropped: boolean;
  /**
   * True when the original had a `transparency_log_entry`: the twin does not keep it (it names
   * the original's log entry) and carries it, signed, as `prior_transparency_log_entry`.
   */
  priorTransparencyLogEntry: boolean;
  signature: SignatureBlock;
}

/**
 * Spec 3.8 re-issue: a new UUID v7 `manifest_id`, `previous_manifest_id` = the old id, a new
 * `issued_at`, the stale `attestation` dropped (it binds the old canonical hash, AM-VEC-021),
 * and a new signature. Spec 2.2 "Key Rotation": the twin references the original's log entry in
 * the signed `prior_transparency_log_entry` and drops the unsigned `transparency_log_entry`
 * (it describes the original; the twin gets its own once logged); an original with no entry
 * gives a twin with neither. Every other member keeps its text.
 *
 * This writes the twin; whether a stored manifest may be re-issued at all is decided by
 * `decideReissue` (reissue-policy.ts), which every caller asks first.
 */
export async function reissueManifest(
  manifestText: string,
  signer: Signer,
  opts: ReissueOptions,
): Promise<ReissueResult> {
  return reissueDocument(parseDocument(manifestText, opts.source), signer, opts);
}

/** `reissueManifest` over a document already parsed (the re-sign step parses once, to decide and to sign). */
export async function reissueDocument(
  doc: ParsedDocument,
  signer: Signer,
  opts: ReissueOptions,
): Promise<ReissueResult> {
  const root = manifestRoot(doc, opts.source);
  const previousManifestId = root.get('manifest_id');
  if (typeof previousManifestId !== 'string' || previousManifestId === '') {
    throw new ManifestError('has no string manifest_id to re-issue', sourceOnly(opts.source));
  }
  const manifestId = opts.newManifestId ?? uuidv7(opts.now);
  if (manifestId === previousManifestId) {
    throw new ManifestError(`the new manifest_id equals the old one`, {
      ...sourceOnly(opts.source),
      manifestId,
    });
  }
  const issuedAt = formatUtcSeconds(opts.now);
  const attestationDropped = root.has('attestation');
  const entry = root.get('transparency_log_entry');
  const priorTransparencyLogEntry = entry !== undefined && entry !== null;
  // The entry's exact text, so the signed copy says byte for byte what the log returned.
  const entryText = priorTransparencyLogEntry ? lastMemberText(doc, 'transparency_log_entry') : null;
  root.set('manifest_id', manifestId);
  root.set('previous_manifest_id', previousManifestId);
  root.set('issued_at', issuedAt);
  root.delete('attestation');
  root.delete('transparency_log_entry');
  if (priorTransparencyLogEntry) root.set('prior_transparency_log_entry', entry);
  else root.delete('prior_transparency_log_entry');
  const signature = await signRoot(root, signer, opts.now, opts.source ?? previousManifestId);
  const layout = layoutOf(doc);
  const edits: MemberEdit[] = [
    { key: 'manifest_id', valueText: JSON.stringify(manifestId) },
    { key: 'previous_manifest_id', valueText: JSON.stringify(previousManifestId), after: 'manifest_id' },
    { key: 'issued_at', valueText: JSON.stringify(issuedAt) },
    { key: 'attestation', valueText: null },
    { key: 'prior_transparency_log_entry', valueText: entryText, after: 'transparency_log_entry' },
    { key: 'transparency_log_entry', valueText: null },
    { key: 'signature', valueText: formatSignatureBlock(signature, layout) },
  ];
  const text = spliceMembers(doc, edits, layout);
  return { text, manifestId, previousManifestId, attestationDropped, priorTransparencyLogEntry, signature };
}

/** The source text of a top-level member's value (the last one, as Python's dict keeps it). */
function lastMemberText(doc: ParsedDocument, key: string): string | null {
  const spans = doc.members ?? [];
  for (let i = spans.length - 1; i >= 0; i--) {
    const m = spans[i]!;
    if (m.key === key) return doc.text.slice(m.valueStart, m.valueEnd);
  }
  return null;
}

function manifestRoot(doc: ParsedDocument, source: string | undefined): JsonObject {
  if (!isJsonObject(doc.root)) throw new ManifestError('is not a JSON object', sourceOnly(source));
  return doc.root;
}

async function signRoot(
  root: JsonObject,
  signer: Signer,
  signedAt: Date,
  source: string | undefined,
): Promise<SignatureBlock> {
  const id = root.get('manifest_id');
  const manifestId = typeof id === 'string' ? id : undefined;
  if (root.get('version') === '0.2') {
    // A v0.2 manifest is a COSE_Sign1; a v0.1 signature block on it is refused by every verifier
    // (AM-VEC-COSE-014). v0.2 documents are signed by signCoseManifest / reissueCoseEnvelope.
    throw new ManifestError(
      'declares version "0.2", which is signed as a COSE_Sign1 envelope, not with a v0.1 signature block',
      { ...sourceOnly(source), path: 'version', ...(manifestId === undefined ? {} : { manifestId }) },
    );
  }
  const profile = root.get('crypto_profile');
  if (typeof profile === 'string' && NON_ED25519_PROFILES.has(profile)) {
    throw new ManifestError(
      `crypto_profile "${profile}" needs a post-quantum signature; an Ed25519 signature would be a downgrade`,
      { ...sourceOnly(source), path: 'crypto_profile', ...(manifestId === undefined ? {} : { manifestId }) },
    );
  }
  const preImage = signingPreImage(root, source);
  const signature = await signer.sign(preImage);
  if (signature.length !== 64) {
    throw new ManifestError(
      `signer ${signer.keyId} returned ${signature.length} bytes, not a 64-byte Ed25519 signature`,
      {
        ...sourceOnly(source),
      },
    );
  }
  return {
    algorithm: 'Ed25519',
    key_id: signer.keyId,
    key_type: signer.keyType,
    signed_at: formatUtcSeconds(signedAt),
    signature_value: b64urlEncode(signature),
    signed_fields: [...SIGNED_FIELDS],
  };
}

const SIGNED_FIELDS_COMPACT = JSON.stringify(SIGNED_FIELDS);
const SIGNED_FIELDS_SPACED = `[${SIGNED_FIELDS.map((f) => JSON.stringify(f)).join(', ')}]`;

/** The block in the document's layout; compact and Python-default layouts are written by hand (hot path). */
function formatSignatureBlock(block: SignatureBlock, layout: Layout): string {
  if (layout.indent !== null) return formatValue(block, layout);
  const q = JSON.stringify;
  const [sep, colon, fields] = isSpaced(layout)
    ? [', ', ': ', SIGNED_FIELDS_SPACED]
    : [',', ':', SIGNED_FIELDS_COMPACT];
  return (
    `{"algorithm"${colon}${q(block.algorithm)}${sep}"key_id"${colon}${q(block.key_id)}${sep}` +
    `"key_type"${colon}${q(block.key_type)}${sep}"signed_at"${colon}${q(block.signed_at)}${sep}` +
    `"signature_value"${colon}${q(block.signature_value)}${sep}"signed_fields"${colon}${fields}}`
  );
}

function sourceOnly(source: string | undefined): { source?: string } {
  return source === undefined ? {} : { source };
}

// One syscall per 256 ids instead of one per id: re-issue runs at tens of thousands a second.
const RANDOM_POOL = Buffer.alloc(10 * 256);
let poolOffset = RANDOM_POOL.length;

/** A UUID v7 (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10, 74 random bits. */
export function uuidv7(now: Date, random?: Uint8Array): string {
  const ms = now.getTime();
  if (!Number.isInteger(ms) || ms < 0 || ms >= 2 ** 48)
    throw new RangeError('UUID v7 needs a time between 1970 and 10889');
  let r: Uint8Array;
  if (random !== undefined) {
    if (random.length < 10) throw new RangeError('UUID v7 needs 10 random bytes');
    r = random;
  } else {
    if (poolOffset + 10 > RANDOM_POOL.length) {
      randomFillSync(RANDOM_POOL);
      poolOffset = 0;
    }
    r = RANDOM_POOL.subarray(poolOffset, poolOffset + 10);
    poolOffset += 10;
  }
  const b = new Uint8Array(16);
  const high = Math.floor(ms / 2 ** 16);
  b[0] = (high >>> 24) & 0xff;
  b[1] = (high >>> 16) & 0xff;
  b[2] = (high >>> 8) & 0xff;
  b[3] = high & 0xff;
  b[4] = (ms >>> 8) & 0xff;
  b[5] = ms & 0xff;
  b[6] = 0x70 | (r[0]! & 0x0f);
  b[7] = r[1]!;
  b[8] = 0x80 | (r[2]! & 0x3f);
  for (let i = 3; i < 10; i++) b[i + 6] = r[i]!;
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
