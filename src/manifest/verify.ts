/**
 * The verifier core: manifest text + trusted keys + revoked ids + clock -> a verdict.
 * Checks run in the reference SDK's order (version, revocation, expiry, signature), and
 * anything rotor cannot check with certainty is INVALID, never VALID.
 */
import { verify } from 'node:crypto';
import { errorMessage } from '../errors';
import { signatureProblem, trustedKey } from './ed25519';
import { getString, isJsonObject, type JsonValue, parseJson } from './json';
import { b64urlDecode } from './keys';
import { signingPreImage } from './preimage';
import { NON_ED25519_PROFILES } from './sign';
import { parseTimestamp } from './timestamps';

export type VerificationResult = 'VALID' | 'INVALID' | 'REVOKED' | 'EXPIRED';

export interface Verdict {
  result: VerificationResult;
  /** `signature.key_id` when the manifest names one. */
  keyId: string | null;
  reason: string;
}

export interface VerifyContext {
  /** Bare hex key_id -> raw 32-byte public key. */
  trustedKeys: Map<string, Uint8Array>;
  revokedIds?: Set<string>;
  now: Date;
}

/**
 * Manifest versions the SDK's verifier processes (it answers INCOMPATIBLE_VERSION to others):
 * 0.1 as a JSON document with a detached signature block (here), 0.2 as a COSE envelope
 * (`verifyCoseEnvelope`).
 */
export const SUPPORTED_MANIFEST_VERSIONS: ReadonlySet<string> = new Set(['0.1', '0.2']);

export function verifyManifest(manifestText: string, ctx: VerifyContext): Verdict {
  let root: JsonValue;
  try {
    root = parseJson(manifestText);
  } catch (err) {
    return { result: 'INVALID', keyId: null, reason: errorMessage(err) };
  }
  return verifyParsedManifest(root, ctx);
}

export function verifyParsedManifest(root: JsonValue, ctx: VerifyContext): Verdict {
  if (!isJsonObject(root)) return invalid(null, 'the manifest is not a JSON object');
  const sig = root.get('signature');
  const keyId = isJsonObject(sig) ? getString(sig, 'key_id') : null;

  const version = root.get('version');
  if (typeof version !== 'string' || !SUPPORTED_MANIFEST_VERSIONS.has(version)) {
    return invalid(
      keyId,
      `unsupported manifest version ${describe(version)} (this verifier reads 0.1 and 0.2)`,
    );
  }
  if (version === '0.2') {
    // AM-VEC-COSE-014: the version is supported, the envelope is the defect.
    return invalid(
      keyId,
      'a version 0.2 manifest is signed as a COSE_Sign1 envelope; a JSON document with a v0.1 signature block is refused (cose-envelope-v0.2 §6)',
    );
  }
  const manifestId = root.get('manifest_id');
  if (typeof manifestId !== 'string' || manifestId === '')
    return invalid(keyId, 'manifest_id is missing or not a string');
  if (ctx.revokedIds?.has(manifestId))
    return { result: 'REVOKED', keyId, reason: `manifest_id ${manifestId} is revoked` };

  const expiresAt = root.get('expires_at');
  // The SDK skips the expiry check for an absent, null or empty expires_at.
  if (expiresAt !== undefined && expiresAt !== null && expiresAt !== '') {
    if (typeof expiresAt !== 'string') return invalid(keyId, 'expires_at is not a string');
    const parsed = parseTimestamp(expiresAt);
    if (typeof parsed === 'string') return invalid(keyId, `expires_at: ${parsed}`);
    if (parsed.epochMs < ctx.now.getTime())
      return { result: 'EXPIRED', keyId, reason: `expired at ${expiresAt}` };
  }

  if (sig === undefined || sig === null || (isJsonObject(sig) && sig.size === 0)) {
    return invalid(null, 'unsigned: the manifest has no signature block');
  }
  if (!isJsonObject(sig)) return invalid(null, 'the signature block is not a JSON object');
  const algorithm = sig.has('algorithm') ? sig.get('algorithm') : 'Ed25519';
  if (algorithm !== 'Ed25519') {
    return invalid(
      keyId,
      `unsupported signature algorithm ${describe(algorithm ?? null)} (rotor verifies Ed25519)`,
    );
  }
  const profile = root.get('crypto_profile');
  if (typeof profile === 'string' && NON_ED25519_PROFILES.has(profile)) {
    return invalid(keyId, `crypto_profile "${profile}" with only an Ed25519 signature is a downgrade`);
  }
  if (keyId === null) return invalid(null, 'the signature block has no key_id');
  const publicKey = ctx.trustedKeys.get(keyId);
  if (publicKey === undefined) return invalid(keyId, `key_id ${keyId} is not a trusted key`);
  const key = trustedKey(keyId, publicKey);
  if (!key.ok) return invalid(keyId, key.problem);

  const value = sig.get('signature_value');
  if (typeof value !== 'string' || value === '') return invalid(keyId, 'signature_value is missing');
  let signature: Uint8Array;
  try {
    signature = b64urlDecode(value, 'signature_value');
  } catch (err) {
    return invalid(keyId, errorMessage(err));
  }
  const malformed = signatureProblem(signature);
  if (malformed !== null) return invalid(keyId, `signature_value: ${malformed}`);
  let preImage: Uint8Array;
  try {
    preImage = signingPreImage(root, manifestId);
  } catch (err) {
    return invalid(keyId, errorMessage(err));
  }
  if (!verify(null, preImage, key.keyObject, signature)) {
    return invalid(keyId, `the signature does not verify with key_id ${keyId}`);
  }
  return { result: 'VALID', keyId, reason: `signature verified with key_id ${keyId}` };
}

function invalid(keyId: string | null, reason: string): Verdict {
  return { result: 'INVALID', keyId, reason };
}

function describe(value: JsonValue | undefined): string {
  if (value === undefined) return '(absent)';
  if (typeof value === 'string') return JSON.stringify(value);
  return 'of the wrong type';
}
