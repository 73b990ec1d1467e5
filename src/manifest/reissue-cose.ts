/**
 * Re-issue as v0.2 (a COSE_Sign1 signed by the new key), from a v0.2 envelope or, migrating, from a
 * v0.1 document. Spec 3.8 and 2.2 "Key Rotation" (docs/upstream/agent-manifest-spec-v0.2.md): a new
 * UUID v7 `manifest_id`, `previous_manifest_id` = the old one, a new `issued_at`, and
 * `prior_transparency_log_entry` referencing the previous manifest's log entry. What attaches after
 * signing (attestation, approvals, receipts) binds or describes the old document and is dropped and
 * reported, never carried (AM-VEC-021).
 *
 * The v0.1 -> v0.2 conversion applies only the rules the documents define (README, "Migration to
 * v0.2"); a manifest that needs anything else is refused with the reason, never guessed at.
 */
import { examineEnvelope, LABEL } from './cose';
import { type CoseSignResult, signCoseRoot } from './cose-sign';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, parseDocument } from './json';
import { SIGNED_FIELDS } from './preimage';
import { uuidv7 } from './sign';
import type { Signer } from './signer';
import { formatUtcSeconds, parseTimestamp } from './timestamps';

/** The v0.1 `@context` ADR-0012 withdraws. */
export const CONTEXT_V01 = 'https://agentmanifest.agentrust.io/v0.1/context.json';
/**
 * Every v0.1 `@context` the conversion maps to the v0.2 URL: ADR-0012's, and the one the reference
 * SDK's own v0.1 manifests carry (test/fixtures/vectors/reference-sdk-shared.json). Both name the
 * v0.1 context that v0.2 replaces with one URL; any other value is refused, not guessed.
 */
export const V01_CONTEXTS: readonly string[] = [CONTEXT_V01, 'https://agentmanifest.org/v0.1/context.json'];
/** ADR-0012; spec 3.1. */
export const CONTEXT_V02 = 'https://manifest.agentrust-io.com/v0.2/context.json';

// The policy's choice of version for re-issued manifests: one definition, in src/domain.ts.
export type { ReissueAs } from '../domain';

export interface CoseReissueOptions {
  now: Date;
  newManifestId?: string;
  source?: string;
}

export interface CoseReissueResult extends CoseSignResult {
  previousManifestId: string;
  /** What the twin does not carry over (attestation, approvals, a stale prior entry, ...). */
  dropped: string[];
  /** True when the original was a v0.1 document converted to v0.2. */
  converted: boolean;
}

/** Re-issues a v0.2 envelope as a new v0.2 envelope signed by `signer`. */
export async function reissueCoseEnvelope(
  envelope: Uint8Array,
  signer: Signer,
  opts: CoseReissueOptions,
): Promise<CoseReissueResult> {
  const e = examineEnvelope(envelope, opts.source, { allowHybrid: true });
  const where = { ...sourceOnly(opts.source), manifestId: e.manifestId };
  if (e.hybrid) {
    throw new ManifestError(
      'is a hybrid Ed25519 + ML-DSA-65 COSE_Sign: re-issuing it needs an ML-DSA-65 signature, which rotor cannot make yet; an Ed25519-only twin would be a downgrade',
      where,
    );
  }
  const dropped: string[] = [];
  const receipts = e.envelope.unprotected.get(LABEL.receipts);
  if (receipts !== undefined) {
    throw new ManifestError(
      'carries a SCITT receipt (unprotected header 394); spec 2.2 requires the twin to reference it in prior_transparency_log_entry, ' +
        'whose shape (v0.1 section 3.6: log_id, log_index, entry_uuid, integrated_time, inclusion_proof) a COSE receipt does not define; not guessed',
      where,
    );
  }
  if (e.envelope.unprotected.has(LABEL.attestation)) dropped.push('attestation (unprotected header)');
  if (e.envelope.unprotected.has(LABEL.approvals)) dropped.push('approvals (unprotected header)');
  const otherLabels = e.envelope.unprotected.entries.filter(
    ([k]) => k !== LABEL.attestation && k !== LABEL.approvals,
  );
  if (otherLabels.length > 0) dropped.push(`${otherLabels.length} other unprotected header parameter(s)`);
  const manifest: JsonObject = new Map(e.manifest);
  if (manifest.has('prior_transparency_log_entry')) {
    // It references the original's predecessor; the original itself was never logged (no receipt).
    manifest.delete('prior_transparency_log_entry');
    dropped.push("prior_transparency_log_entry (the original's predecessor's; the original has no receipt)");
  }
  return finish(manifest, e.manifestId, signer, opts, dropped, false);
}

/**
 * Re-issues a v0.1 document as a v0.2 envelope (the migration). The conversion, each step with its
 * reference:
 * - `version` "0.1" -> "0.2" (spec 3.1 cardinality table, 2.4 producer requirements);
 * - `@context` a v0.1 URL (V01_CONTEXTS) -> the v0.2 URL (ADR-0012; spec 3.1: the v0.1 URL MUST NOT be accepted);
 *   an absent `@context` stays absent; any other value is refused;
 * - `signature` removed: the COSE structure is the signature (cose-envelope-v0.2 section 4);
 * - `transparency_log_entry` becomes the twin's `prior_transparency_log_entry` (spec 2.2 "Key
 *   Rotation" (2)); a receipt attaches in the unprotected header only after the twin is logged (section 4.1);
 * - `attestation` dropped: it binds the old document (AM-VEC-021; spec 2.2 full re-issuance);
 * - `hitl_record.approvals` dropped from the payload (section 4: approvals attach in the unprotected
 *   header); each approval authenticated the old manifest, so none is carried;
 * - every other member is kept as it is (ADR-0012: the schema does not change).
 * Refused: a top-level member outside v0.1's `signed_fields` and the three unsigned members (v0.2 would
 * sign what the issuer never signed), a duplicate member name, a post-quantum or hybrid profile.
 */
export async function reissueV01AsCose(
  text: string,
  signer: Signer,
  opts: CoseReissueOptions,
): Promise<CoseReissueResult> {
  const { manifest, manifestId, dropped } = convertV01ToV02(text, opts.source);
  return finish(manifest, manifestId, signer, opts, dropped, true);
}

/**
 * `reissueV01AsCose` from a document already parsed with no duplicate member name (the re-sign
 * step's, which `decideReissue` declined otherwise), so the text is not read a second time.
 */
export async function reissueV01RootAsCose(
  root: JsonObject,
  signer: Signer,
  opts: CoseReissueOptions,
): Promise<CoseReissueResult> {
  const { manifest, manifestId, dropped } = convertV01Root(root, opts.source);
  return finish(manifest, manifestId, signer, opts, dropped, true);
}

/**
 * The v0.1 -> v0.2 conversion alone (the rules above), without the re-issue fields: the document
 * a v0.2 payload is made of. Throws ManifestError where the spec defines no conversion.
 */
export function convertV01ToV02(
  text: string,
  source?: string,
): { manifest: JsonObject; manifestId: string; dropped: string[] } {
  const root = parseDocument(text, source, { rejectDuplicateKeys: true }).root;
  if (!isJsonObject(root)) throw new ManifestError('is not a JSON object', sourceOnly(source));
  return convertV01Root(root, source);
}

/** The conversion of a parsed v0.1 document (with no duplicate member name); `root` is not changed. */
function convertV01Root(
  root: JsonObject,
  source?: string,
): { manifest: JsonObject; manifestId: string; dropped: string[] } {
  const where = sourceOnly(source);
  const id = root.get('manifest_id');
  if (typeof id !== 'string' || id === '') {
    throw new ManifestError('has no string manifest_id to re-issue', { ...where, path: 'manifest_id' });
  }
  const withId = { ...where, manifestId: id };
  const version = root.get('version');
  if (version !== '0.1') {
    throw new ManifestError(
      `version is ${typeof version === 'string' ? JSON.stringify(version) : 'not a string'}; the v0.1 -> v0.2 conversion reads version "0.1" documents`,
      { ...withId, path: 'version' },
    );
  }
  const unknown = [...root.keys()].filter((k) => !V01_MEMBERS.has(k));
  if (unknown.length > 0) {
    throw new ManifestError(
      `member(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')} sit outside v0.1's signed_fields; a v0.2 payload would sign what the issuer never signed, and the spec defines no conversion for them`,
      { ...withId, path: unknown[0]! },
    );
  }
  const profile = root.get('crypto_profile');
  if (profile === 'post-quantum' || (typeof profile === 'string' && profile.startsWith('hybrid'))) {
    throw new ManifestError(
      `crypto_profile "${profile}" needs an ML-DSA-65 signature, which rotor cannot make; an Ed25519-only envelope would be a downgrade`,
      { ...withId, path: 'crypto_profile' },
    );
  }
  const context = root.get('@context');
  const dropped: string[] = [];
  const m: JsonObject = new Map(root);
  if (context !== undefined && context !== null) {
    if (typeof context === 'string' && V01_CONTEXTS.includes(context)) m.set('@context', CONTEXT_V02);
    else if (context !== CONTEXT_V02) {
      throw new ManifestError(
        `@context ${typeof context === 'string' ? JSON.stringify(context) : 'is not a string'}: only the v0.1 context URLs (${V01_CONTEXTS.join(', ')}) map to ${CONTEXT_V02} (ADR-0012)`,
        { ...withId, path: '@context' },
      );
    }
  }
  m.set('version', '0.2');
  m.delete('signature');
  if (m.has('attestation') && m.get('attestation') !== null) dropped.push('attestation');
  m.delete('attestation');
  const tle = m.get('transparency_log_entry');
  m.delete('transparency_log_entry');
  if (tle !== undefined && tle !== null && !isJsonObject(tle)) {
    throw new ManifestError('transparency_log_entry is not an object', {
      ...withId,
      path: 'transparency_log_entry',
    });
  }
  if (isJsonObject(tle)) m.set('prior_transparency_log_entry', tle);
  else if (m.has('prior_transparency_log_entry')) {
    m.delete('prior_transparency_log_entry');
    dropped.push(
      "prior_transparency_log_entry (the original's predecessor's; the original has no log entry)",
    );
  }
  const hitl = m.get('hitl_record');
  if (isJsonObject(hitl) && hitl.has('approvals')) {
    const approvals = hitl.get('approvals');
    if (Array.isArray(approvals) && approvals.length > 0)
      dropped.push(`hitl_record.approvals (${approvals.length})`);
    const h = new Map(hitl);
    h.delete('approvals');
    m.set('hitl_record', h);
  }
  return { manifest: m, manifestId: id, dropped };
}

/** v0.1's signed_fields plus the three members v0.1 keeps outside the signature. */
const V01_MEMBERS: ReadonlySet<string> = new Set([
  ...SIGNED_FIELDS,
  'signature',
  'attestation',
  'transparency_log_entry',
]);

/**
 * Spec 3.1: expires_at no less than 1 hour after issued_at; a twin keeps expires_at, so one with
 * under an hour left would not verify (DOMAIN fact 12). The 365-day ceiling is spec 3.1's for Level 1+
 * only, and the SDK judged the shared v0.2 vectors (2026 -> 2099) VALID, so it is not applied here.
 */
const MIN_WINDOW_MS = 3600_000;

async function finish(
  m: JsonObject,
  previousManifestId: string,
  signer: Signer,
  opts: CoseReissueOptions,
  dropped: string[],
  converted: boolean,
): Promise<CoseReissueResult> {
  const where = { ...sourceOnly(opts.source), manifestId: previousManifestId };
  const manifestId = opts.newManifestId ?? uuidv7(opts.now);
  if (manifestId === previousManifestId)
    throw new ManifestError('the new manifest_id equals the old one', where);
  const issuedAt = formatUtcSeconds(opts.now);
  const expiresAt = m.get('expires_at');
  if (typeof expiresAt === 'string') {
    const exp = parseTimestamp(expiresAt);
    if (typeof exp === 'string') throw new ManifestError(exp, { ...where, path: 'expires_at' });
    const window = exp.epochMs - Math.floor(opts.now.getTime() / 1000) * 1000;
    if (window < MIN_WINDOW_MS) {
      throw new ManifestError(
        `expires_at ${expiresAt} is less than 1 hour after the new issued_at ${issuedAt} (spec 3.1); a twin would not verify`,
        { ...where, path: 'expires_at' },
      );
    }
  }
  m.set('manifest_id', manifestId);
  m.set('previous_manifest_id', previousManifestId);
  m.set('issued_at', issuedAt);
  const signed = await signCoseRoot(m, signer, opts.source ?? previousManifestId);
  return { ...signed, previousManifestId, dropped, converted };
}

function sourceOnly(source: string | undefined): { source?: string } {
  return source === undefined ? {} : { source };
}
