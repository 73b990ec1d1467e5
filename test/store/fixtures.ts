/** Test data shared by the store and HTTP suites: the reference SDK's vectors and synthetic records. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { softwareSigner } from '../../src/manifest';
import type { RevocationInput } from '../../src/store/revocations';
import type { TrustAnchorInput } from '../../src/store/trust-anchors';

const VECTORS = fileURLToPath(new URL('../fixtures/vectors/reference-sdk-shared.json', import.meta.url));

interface SdkVectors {
  key: { seed_b64url: string; public_b64url: string; key_id: string };
  manifests: { unsigned_json: string; signed_json: string }[];
  revocations: { jsonl_line: string }[];
}

export const sdkVectors: SdkVectors = JSON.parse(readFileSync(VECTORS, 'utf8'));

export function sdkRevocation(index = 0): RevocationInput {
  const line = sdkVectors.revocations[index]!.jsonl_line;
  const parsed = JSON.parse(line) as Record<string, string>;
  return {
    manifestId: parsed.manifest_id!,
    line,
    signerKeyId: parsed.signer_key_id!,
    revokedAt: parsed.revoked_at!,
  };
}

/** A line in the FileCRL shape; its signature is filler (storage does not verify signatures). */
export function syntheticRevocation(
  manifestId: string,
  reason = 'Key rotation - test',
  pad = 0,
): RevocationInput {
  const revokedAt = '2026-06-05T10:00:00Z';
  const signerKeyId = 'ab'.repeat(32);
  const line = JSON.stringify({
    manifest_id: manifestId,
    revoked_at: revokedAt,
    reason: pad > 0 ? `${reason} ${'x'.repeat(pad)}` : reason,
    revoked_by: 'spiffe://trust.example/security-team',
    revocation_signature: 'A'.repeat(86),
    signer_key_id: signerKeyId,
  });
  return { manifestId, line, signerKeyId, revokedAt };
}

export const oldKey = softwareSigner(new Uint8Array(32).fill(1));
export const newKey = softwareSigner(new Uint8Array(32).fill(2));

/** The anchor of a rotation's overlap window: both keys, the new one active. */
export function overlapAnchor(): TrustAnchorInput {
  return {
    activeKeyId: newKey.keyId,
    keys: [
      {
        keyId: oldKey.keyId,
        publicKey: oldKey.publicKey,
        validFrom: '2026-01-01T00:00:00Z',
        status: 'retiring',
        validUntil: '2026-06-06T10:00:00Z',
      },
      {
        keyId: newKey.keyId,
        publicKey: newKey.publicKey,
        validFrom: '2026-06-05T10:00:00Z',
        status: 'active',
      },
    ],
  };
}
