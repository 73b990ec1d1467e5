/**
 * Verifying a v0.2 envelope (docs/upstream/agent-manifest-cose-envelope-v0.2.md §6), in order,
 * failing closed at the first failure: structure and tag, protected header, payload and version,
 * crypto_profile against alg (`examineEnvelope`), then rotor's revocation and expiry checks (the
 * SDK's order for v0.1, kept for both versions), then the signature over the Sig_structure under
 * the SDK's strict Ed25519 rules, then the key's issuer binding. The unprotected header is never
 * read before the signature is settled, and never changes the verdict (§6 step 7).
 */
import { verify } from 'node:crypto';
import { errorMessage } from '../errors';
import { CoseRefusal, examineEnvelope, sigStructure1 } from './cose';
import { signatureProblem, trustedKey } from './ed25519';
import { ManifestError } from './errors';
import { getString } from './json';
import { parseTimestamp } from './timestamps';
import type { Verdict, VerifyContext } from './verify';

/** The upstream verdict vocabulary (the vectors' `expected.result`) beside rotor's four results. */
export type UpstreamResult =
  | 'VALID'
  | 'MISMATCH'
  | 'INCOMPATIBLE_VERSION'
  | 'UNVERIFIABLE'
  | 'REVOKED'
  | 'EXPIRED';

export interface CoseVerdict extends Verdict {
  upstream: UpstreamResult;
  signatureVerified: boolean;
  manifestId: string | null;
}

export interface CoseVerifyContext extends VerifyContext {
  /** key_id -> the issuers it may sign for (AM-VEC-COSE-009); a key absent here is unrestricted. */
  trustedKeyIssuers?: Map<string, readonly string[]>;
}

export function verifyCoseEnvelope(bytes: Uint8Array, ctx: CoseVerifyContext): CoseVerdict {
  let examined: ReturnType<typeof examineEnvelope>;
  try {
    examined = examineEnvelope(bytes);
  } catch (err) {
    if (err instanceof CoseRefusal) {
      return {
        result: 'INVALID',
        upstream: err.kind,
        keyId: err.keyId,
        manifestId: err.manifestId ?? null,
        signatureVerified: false,
        reason: err.message,
      };
    }
    if (err instanceof ManifestError) return refuse('MISMATCH', null, null, errorMessage(err));
    throw err;
  }
  const { keyId, manifest, manifestId, envelope } = examined;
  if (ctx.revokedIds?.has(manifestId)) {
    return {
      result: 'REVOKED',
      upstream: 'REVOKED',
      keyId,
      manifestId,
      signatureVerified: false,
      reason: `manifest_id ${manifestId} is revoked`,
    };
  }
  const expiresAt = manifest.get('expires_at');
  if (expiresAt !== undefined && expiresAt !== null && expiresAt !== '') {
    if (typeof expiresAt !== 'string')
      return refuse('MISMATCH', keyId, manifestId, 'expires_at is not a string');
    const parsed = parseTimestamp(expiresAt);
    if (typeof parsed === 'string') return refuse('MISMATCH', keyId, manifestId, `expires_at: ${parsed}`);
    if (parsed.epochMs < ctx.now.getTime()) {
      return {
        result: 'EXPIRED',
        upstream: 'EXPIRED',
        keyId,
        manifestId,
        signatureVerified: false,
        reason: `expired at ${expiresAt}`,
      };
    }
  }
  const publicKey = ctx.trustedKeys.get(keyId);
  if (publicKey === undefined) {
    return refuse('UNVERIFIABLE', keyId, manifestId, `kid ${keyId} is not a trusted key`);
  }
  const key = trustedKey(keyId, publicKey);
  if (!key.ok) return refuse('MISMATCH', keyId, manifestId, key.problem);
  const signature = envelope.signature!;
  const malformed = signatureProblem(signature);
  if (malformed !== null) return refuse('MISMATCH', keyId, manifestId, `signature: ${malformed}`);
  const toBeSigned = sigStructure1(envelope.protectedBytes, examined.payload);
  if (!verify(null, toBeSigned, key.keyObject, signature)) {
    return refuse(
      'MISMATCH',
      keyId,
      manifestId,
      `the COSE_Sign1 signature does not verify with kid ${keyId}`,
    );
  }
  const issuers = ctx.trustedKeyIssuers?.get(keyId);
  const issuer = getString(manifest, 'issuer');
  if (issuers !== undefined && (issuer === null || !issuers.includes(issuer))) {
    return {
      result: 'INVALID',
      upstream: 'MISMATCH',
      keyId,
      manifestId,
      signatureVerified: true,
      reason: `key ${keyId} is not authorized for issuer ${issuer === null ? '(none)' : JSON.stringify(issuer)}`,
    };
  }
  return {
    result: 'VALID',
    upstream: 'VALID',
    keyId,
    manifestId,
    signatureVerified: true,
    reason: `COSE_Sign1 signature verified with kid ${keyId}`,
  };
}

function refuse(
  upstream: UpstreamResult,
  keyId: string | null,
  manifestId: string | null,
  reason: string,
): CoseVerdict {
  return { result: 'INVALID', upstream, keyId, manifestId, signatureVerified: false, reason };
}
