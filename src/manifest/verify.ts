/**
 * The verifier core: manifest text + trusted keys + revoked ids + clock -> a verdict.
 * Checks run in the reference SDK's order (version, schema, revocation, expiry, signature), and
 * anything rotor cannot check with certainty is INVALID, never VALID. The SDK's MISMATCH,
 * SIGNATURE_MISSING and UNVERIFIABLE are all INVALID here, with the reason.
 */
import { verify } from 'node:crypto';
import { errorMessage } from '../errors';
import { signatureProblem, trustedKey } from './ed25519';
import { getString, isJsonObject, type JsonObject, type JsonValue, parseJson } from './json';
import { b64urlDecode } from './keys';
import { signingPreImage } from './preimage';
import { describeSchemaProblems, manifestSchemaProblems } from './schema';
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
  // The SDK validates the whole document against the spec's model before anything else
  // (DOMAIN fact 17): a manifest with an unknown member or a broken rule is MISMATCH.
  const problems = manifestSchemaProblems(root);
  if (problems.length > 0) return invalid(keyId, describeSchemaProblems(problems));
  const manifestId = root.get('manifest_id') as string;
  if (ctx.revokedIds?.has(manifestId))
    return { result: 'REVOKED', keyId, reason: `manifest_id ${manifestId} is revoked` };

  const expiresAt = root.get('expires_at') as string;
  const expires = parseTimestamp(expiresAt);
  if (typeof expires !== 'string' && expires.epochMs < ctx.now.getTime())
    return { result: 'EXPIRED', keyId, reason: `expired at ${expiresAt}` };
  // A manifest from the verifier's future is not yet in force (DOMAIN fact 12).
  const issuedAt = root.get('issued_at') as string;
  const issued = parseTimestamp(issuedAt);
  if (typeof issued !== 'string' && issued.epochMs > ctx.now.getTime())
    return invalid(keyId, `issued_at ${issuedAt} is in the future`);

  const signature = checkManifestSignature(root, ctx.trustedKeys);
  if (!signature.ok) return invalid(signature.keyId, signature.reason);
  const flagged = flaggedAssessment(root);
  if (flagged !== null) return invalid(keyId, flagged);
  return { result: 'VALID', keyId, reason: `signature verified with key_id ${keyId}` };
}

export type SignatureCheck =
  | { ok: true; keyId: string }
  | { ok: false; keyId: string | null; reason: string };

/**
 * The signature alone, under strict rules: Ed25519 only, no downgrade of a post-quantum profile,
 * the key_id among `publicKeys`, a well-formed 64-byte signature, the SDK's pre-image, and
 * OpenSSL's verify behind rotor's extra checks (ed25519.ts). Not a verdict: no schema, no clock.
 */
export function checkManifestSignature(
  root: JsonObject,
  publicKeys: Map<string, Uint8Array>,
): SignatureCheck {
  const sig = root.get('signature');
  const keyId = isJsonObject(sig) ? getString(sig, 'key_id') : null;
  if (sig === undefined || sig === null || (isJsonObject(sig) && sig.size === 0)) {
    return { ok: false, keyId: null, reason: 'unsigned: the manifest has no signature block' };
  }
  if (!isJsonObject(sig))
    return { ok: false, keyId: null, reason: 'the signature block is not a JSON object' };
  const fail = (reason: string): SignatureCheck => ({ ok: false, keyId, reason });
  const algorithm = sig.has('algorithm') ? sig.get('algorithm') : 'Ed25519';
  if (algorithm !== 'Ed25519') {
    return fail(`unsupported signature algorithm ${describe(algorithm ?? null)} (rotor verifies Ed25519)`);
  }
  const profile = root.get('crypto_profile');
  if (typeof profile === 'string' && NON_ED25519_PROFILES.has(profile)) {
    return fail(`crypto_profile "${profile}" with only an Ed25519 signature is a downgrade`);
  }
  if (keyId === null) return { ok: false, keyId: null, reason: 'the signature block has no key_id' };
  const publicKey = publicKeys.get(keyId);
  if (publicKey === undefined) return fail(`key_id ${keyId} is not a trusted key`);
  const key = trustedKey(keyId, publicKey);
  if (!key.ok) return fail(key.problem);

  const value = sig.get('signature_value');
  if (typeof value !== 'string' || value === '') return fail('signature_value is missing');
  let signature: Uint8Array;
  try {
    signature = b64urlDecode(value, 'signature_value');
  } catch (err) {
    return fail(errorMessage(err));
  }
  const malformed = signatureProblem(signature);
  if (malformed !== null) return fail(`signature_value: ${malformed}`);
  const manifestId = root.get('manifest_id');
  let preImage: Uint8Array;
  try {
    preImage = signingPreImage(root, typeof manifestId === 'string' ? manifestId : undefined);
  } catch (err) {
    return fail(errorMessage(err));
  }
  if (!verify(null, preImage, key.keyObject, signature)) {
    return fail(`the signature does not verify with key_id ${keyId}`);
  }
  return { ok: true, keyId };
}

/**
 * Assessments that MUST NOT be issued as VALID: a flagged RAG poisoning scan (spec §3.2.5.1)
 * and a flagged configuration assurance test (§3.2.1.1). Null when neither is flagged.
 */
function flaggedAssessment(root: JsonObject): string | null {
  const artifacts = root.get('artifacts');
  if (!isJsonObject(artifacts)) return null;
  const rag = artifacts.get('rag_corpus');
  const scan = isJsonObject(rag) ? rag.get('poisoning_scan') : undefined;
  if (isJsonObject(scan) && scan.get('result') === 'flagged')
    return 'artifacts.rag_corpus.poisoning_scan.result is "flagged": never VALID (spec 3.2.5.1)';
  const prompt = artifacts.get('system_prompt');
  const test = isJsonObject(prompt) ? prompt.get('assurance_test') : undefined;
  if (isJsonObject(test) && test.get('result') === 'flagged')
    return 'artifacts.system_prompt.assurance_test.result is "flagged": never VALID (spec 3.2.1.1)';
  return null;
}

function invalid(keyId: string | null, reason: string): Verdict {
  return { result: 'INVALID', keyId, reason };
}

function describe(value: JsonValue | undefined): string {
  if (value === undefined) return '(absent)';
  if (typeof value === 'string') return JSON.stringify(value);
  return 'of the wrong type';
}
