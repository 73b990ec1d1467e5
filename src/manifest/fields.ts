/** What stores and operators read out of a manifest without re-serializing it. */
import { createHash } from 'node:crypto';
import { Canonicalizer } from './canonical';
import { examineEnvelope, LABEL } from './cose';
import { ManifestError } from './errors';
import { getString, isJsonObject, type JsonObject, type JsonValue, parseJson } from './json';

export interface ManifestIndexFields {
  manifestId: string;
  agentId: string | null;
  /** `signature.key_id`: the key that signed it. */
  keyId: string | null;
  issuedAt: string | null;
  expiresAt: string | null;
  previousManifestId: string | null;
  /** True when the manifest carries an `attestation` block. */
  hasAttestation: boolean;
}

/** The index columns of a manifest; string members only (anything else reads as null). */
export function manifestIndexFields(manifestText: string, source?: string): ManifestIndexFields {
  const root = parseJson(manifestText, source);
  return indexFieldsOf(root, source);
}

export function indexFieldsOf(root: JsonValue, source?: string): ManifestIndexFields {
  const where = source === undefined ? {} : { source };
  if (!isJsonObject(root)) throw new ManifestError('is not a JSON object', where);
  const manifestId = root.get('manifest_id');
  if (typeof manifestId !== 'string' || manifestId === '') {
    throw new ManifestError('has no manifest_id string', { ...where, path: 'manifest_id' });
  }
  const signature = root.get('signature');
  return {
    manifestId,
    agentId: getString(root, 'agent_id'),
    keyId: isJsonObject(signature) ? getString(signature, 'key_id') : null,
    issuedAt: getString(root, 'issued_at'),
    expiresAt: getString(root, 'expires_at'),
    previousManifestId: getString(root, 'previous_manifest_id'),
    hasAttestation: root.has('attestation'),
  };
}

/**
 * The index columns of a v0.2 envelope: read from its payload, key_id from the protected header's
 * kid. The envelope must pass the v0.2 checks before the signature (cose-envelope-v0.2 §6 steps
 * 1-4); a hybrid COSE_Sign is read (its Ed25519 signer's kid) so that it can be stored and
 * reported, never re-signed.
 */
export function coseIndexFields(
  envelope: Uint8Array,
  source?: string,
): ManifestIndexFields & { hybrid: boolean } {
  const e = examineEnvelope(envelope, source, { allowHybrid: true });
  const m = e.manifest;
  return {
    manifestId: e.manifestId,
    agentId: getString(m, 'agent_id'),
    keyId: e.keyId,
    issuedAt: getString(m, 'issued_at'),
    expiresAt: getString(m, 'expires_at'),
    previousManifestId: getString(m, 'previous_manifest_id'),
    hasAttestation: e.envelope.unprotected.has(LABEL.attestation),
    hybrid: e.hybrid,
  };
}

/**
 * `sha256:<hex>` of the canonical manifest without its `attestation` block: what an attestation
 * report's `manifest_hash_in_report` binds (upstream vectors AM-VEC-018 and AM-VEC-021).
 */
export function attestationManifestHash(manifest: JsonObject, source?: string): string {
  const withoutAttestation = new Map(manifest);
  withoutAttestation.delete('attestation');
  const canonical = new Canonicalizer(source).value(withoutAttestation, 0);
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/** Whether the manifest's attestation still binds this exact document (false when it has none). */
export function attestationBindsManifest(manifest: JsonObject, source?: string): boolean {
  const attestation = manifest.get('attestation');
  if (!isJsonObject(attestation)) return false;
  return getString(attestation, 'manifest_hash_in_report') === attestationManifestHash(manifest, source);
}
