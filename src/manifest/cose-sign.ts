/**
 * Signing a v0.2 manifest as a COSE_Sign1 (docs/upstream/agent-manifest-cose-envelope-v0.2.md):
 * payload = the SDK's canonical JSON without the members that attach after signing, protected
 * header {1: -19, 3, 4: kid, 16}, an empty unprotected map (ADR-0013), the signature over the
 * Sig_structure made by whatever holds the key (a custodian's Signer: OpenSSL for software keys,
 * CKM_EDDSA inside the HSM).
 */
import { cosePayload, encodeSign1, protectedHeaderBytes, sigStructure1 } from './cose';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, parseDocument } from './json';
import type { Signer } from './signer';

export interface CoseSignResult {
  envelope: Uint8Array;
  payload: Uint8Array;
  manifestId: string;
  keyId: string;
  /** Members with a value that the payload leaves out (attestation, receipts, approvals, a v0.1 signature). */
  left: string[];
}

/** Reads a manifest document for v0.2 signing: strict (a duplicate member name is refused). */
export function parseManifestForCose(text: string, source?: string): JsonObject {
  const root = parseDocument(text, source, { rejectDuplicateKeys: true }).root;
  if (!isJsonObject(root))
    throw new ManifestError('is not a JSON object', source === undefined ? {} : { source });
  return root;
}

export async function signCoseManifest(
  manifestText: string,
  signer: Signer,
  opts: { source?: string } = {},
): Promise<CoseSignResult> {
  return signCoseRoot(parseManifestForCose(manifestText, opts.source), signer, opts.source);
}

/** Signs a parsed v0.2 manifest. The caller's object is not changed. */
export async function signCoseRoot(
  manifest: JsonObject,
  signer: Signer,
  source?: string,
): Promise<CoseSignResult> {
  const where = source === undefined ? {} : { source };
  const id = manifest.get('manifest_id');
  if (typeof id !== 'string' || id === '') {
    throw new ManifestError('has no manifest_id string', { ...where, path: 'manifest_id' });
  }
  const withId = { ...where, manifestId: id };
  const version = manifest.get('version');
  if (version !== '0.2') {
    throw new ManifestError(
      `version is ${typeof version === 'string' ? JSON.stringify(version) : 'not a string'}: a COSE_Sign1 envelope carries a version "0.2" payload (a 0.1 payload in one is INCOMPATIBLE_VERSION, cose-envelope-v0.2 §6 step 3)`,
      { ...withId, path: 'version' },
    );
  }
  const profile = manifest.get('crypto_profile');
  if (profile === 'post-quantum' || (typeof profile === 'string' && profile.startsWith('hybrid'))) {
    throw new ManifestError(
      `crypto_profile "${profile}" needs an ML-DSA-65 signature, which rotor cannot make; an Ed25519-only envelope would be a downgrade (cose-envelope-v0.2 §6 step 4)`,
      { ...withId, path: 'crypto_profile' },
    );
  }
  const kid = Buffer.from(signer.keyId, 'hex');
  if (kid.length !== 32 || kid.toString('hex') !== signer.keyId) {
    throw new ManifestError(`signer key_id ${signer.keyId} is not a lowercase hex SHA-256`, withId);
  }
  const { payload, left } = cosePayload(manifest, source ?? id);
  const protectedBytes = protectedHeaderBytes(kid);
  const signature = await signer.sign(sigStructure1(protectedBytes, payload));
  if (signature.length !== 64) {
    throw new ManifestError(
      `signer ${signer.keyId} returned ${signature.length} bytes, not a 64-byte Ed25519 signature`,
      withId,
    );
  }
  return {
    envelope: encodeSign1({ protectedBytes, payload, signature }),
    payload,
    manifestId: id,
    keyId: signer.keyId,
    left,
  };
}
