import { describe, expect, it } from 'vitest';
import {
  b64urlEncode,
  keyIdOf,
  publicKeyFromSeed,
  signManifest,
  verifyManifest,
} from '../../src/manifest/index';
import type { Loose } from './vectors';
import { SIGNED_AT, shared, testSigner, testTrustedKeys, upstream } from './vectors';

const NOW = new Date('2026-06-05T12:00:00Z');
const ctx = () => ({ trustedKeys: testTrustedKeys(), now: NOW });
const vectorText = (id: string) => JSON.stringify(upstream(id).manifest);

describe('upstream conformance vectors (the parts rotor checks)', () => {
  it('AM-VEC-001: signed, in-date manifest is VALID', () => {
    expect(verifyManifest(vectorText('AM-VEC-001'), ctx()).result).toBe('VALID');
  });

  it.each(['AM-VEC-001', 'AM-VEC-002', 'AM-VEC-008', 'AM-VEC-020', 'AM-VEC-005'])(
    '%s: signature verifies exactly when the vector says so',
    (id) => {
      const vec = upstream(id);
      if (vec.expected.signature_verified === undefined) return;
      const verdict = verifyManifest(JSON.stringify(vec.manifest), ctx());
      expect(verdict.result === 'VALID').toBe(vec.expected.signature_verified);
    },
  );

  it('AM-VEC-003: past expires_at is EXPIRED', () => {
    expect(verifyManifest(vectorText('AM-VEC-003'), ctx())).toMatchObject({
      result: 'EXPIRED',
      reason: 'expired at 2000-01-01T00:00:00Z',
    });
  });

  it('AM-VEC-004: a revoked manifest_id is REVOKED', () => {
    const vec = upstream('AM-VEC-004');
    expect(vec.revoke).toBe(true);
    const revokedIds = new Set([vec.manifest['manifest_id'] as string]);
    expect(verifyManifest(vectorText('AM-VEC-004'), { ...ctx(), revokedIds }).result).toBe('REVOKED');
  });

  it('AM-VEC-005: an unsigned manifest is INVALID, never VALID', () => {
    expect(verifyManifest(vectorText('AM-VEC-005'), ctx())).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/unsigned/),
    });
  });

  it('AM-VEC-006: a signed manifest with no trusted keys is INVALID (unknown key)', () => {
    expect(verifyManifest(vectorText('AM-VEC-006'), { trustedKeys: new Map(), now: NOW })).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/not a trusted key/),
    });
  });

  it('AM-VEC-007: an unsupported manifest version is INVALID', () => {
    expect(verifyManifest(vectorText('AM-VEC-007'), ctx())).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/version/),
    });
  });

  it('AM-VEC-008: agent_id altered after signing is INVALID', () => {
    expect(verifyManifest(vectorText('AM-VEC-008'), ctx())).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/does not verify/),
    });
  });

  it('AM-VEC-020: a post-quantum profile carrying only an Ed25519 signature is INVALID', () => {
    expect(verifyManifest(vectorText('AM-VEC-020'), ctx())).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/downgrade/),
    });
  });
});

describe('verifyManifest', () => {
  const signed = shared.manifests[0]!.signed_json;
  const mutate = (fn: (m: Loose) => void) => {
    const m = JSON.parse(signed);
    fn(m);
    return JSON.stringify(m);
  };

  it('checks revocation before expiry and expiry before the signature, as the SDK does', () => {
    const expiredAndTampered = mutate((m) => {
      m.expires_at = '2001-01-01T00:00:00Z';
      m.agent_id = 'x';
    });
    expect(verifyManifest(expiredAndTampered, ctx()).result).toBe('EXPIRED');
    const revokedIds = new Set(['0190b6e0-0000-7000-8000-000000000000']);
    expect(verifyManifest(expiredAndTampered, { ...ctx(), revokedIds }).result).toBe('REVOKED');
  });

  it('an expiry exactly now is not yet EXPIRED; a millisecond later it is', () => {
    const m = mutate((x) => {
      x.expires_at = '2026-06-05T12:00:00Z';
    });
    expect(verifyManifest(m, ctx()).result).not.toBe('EXPIRED');
    expect(verifyManifest(m, { ...ctx(), now: new Date(NOW.getTime() + 1) }).result).toBe('EXPIRED');
  });

  it.each([
    [
      'unsupported algorithm',
      (m: Loose) => (m.signature.algorithm = 'ML-DSA-65'),
      /unsupported signature algorithm "ML-DSA-65"/,
    ],
    ['hybrid algorithm', (m: Loose) => (m.signature.algorithm = 'hybrid-Ed25519-ML-DSA-65'), /unsupported/],
    ['hybrid profile', (m: Loose) => (m.crypto_profile = 'hybrid'), /downgrade/],
    ['unknown key', (m: Loose) => (m.signature.key_id = 'ab'.repeat(32)), /not a trusted key/],
    [
      'prefixed key id',
      (m: Loose) => (m.signature.key_id = `sha256:${m.signature.key_id}`),
      /not a trusted key/,
    ],
    ['missing key_id', (m: Loose) => delete m.signature.key_id, /no key_id/],
    [
      'missing signature_value',
      (m: Loose) => delete m.signature.signature_value,
      /signature_value is missing/,
    ],
    [
      'standard base64',
      (m: Loose) =>
        (m.signature.signature_value =
          m.signature.signature_value.replace(/-/g, '+').replace(/_/g, '/') + '+'),
      /not base64url/,
    ],
    [
      'short signature',
      (m: Loose) => (m.signature.signature_value = m.signature.signature_value.slice(0, 84)),
      /64 bytes/,
    ],
    ['empty signature block', (m: Loose) => (m.signature = {}), /unsigned/],
    ['signature not an object', (m: Loose) => (m.signature = 'x'), /not a JSON object/],
    ['malformed expires_at', (m: Loose) => (m.expires_at = 'tomorrow'), /expires_at/],
    ['missing manifest_id', (m: Loose) => delete m.manifest_id, /manifest_id/],
    ['missing version', (m: Loose) => delete m.version, /version/],
    ['tampered hitl-free member', (m: Loose) => (m.issuer = 'spiffe://evil'), /does not verify/],
  ])('%s is INVALID', (_name, fn, reason) => {
    const verdict = verifyManifest(mutate(fn), ctx());
    expect(verdict.result).toBe('INVALID');
    expect(verdict.reason).toMatch(reason);
  });

  it('approvals added after signing do not break the signature (they are outside the pre-image)', async () => {
    const { text } = await signManifest(shared.manifests[1]!.unsigned_json, testSigner, {
      signedAt: SIGNED_AT,
    });
    const m = JSON.parse(text);
    m.hitl_record.approvals.push({ approver: 'late' });
    m.attestation = { platform: 'tpm' };
    expect(verifyManifest(JSON.stringify(m), ctx()).result).toBe('VALID');
  });

  it('not JSON is INVALID with the parse error as reason', () => {
    expect(verifyManifest('{"a":', ctx())).toMatchObject({ result: 'INVALID', keyId: null });
  });

  it('a trusted key listed under the wrong key_id is INVALID', () => {
    const other = publicKeyFromSeed(new Uint8Array(32).fill(9));
    const trustedKeys = new Map([[shared.key.key_id, other]]);
    expect(verifyManifest(signed, { trustedKeys, now: NOW }).reason).toMatch(/does not hash to its key_id/);
    expect(keyIdOf(other)).not.toBe(shared.key.key_id);
  });

  it('reports the key_id for every verdict where the manifest names one', () => {
    const verdict = verifyManifest(signed, { trustedKeys: new Map(), now: NOW });
    expect(verdict.keyId).toBe(shared.key.key_id);
    expect(b64urlEncode(new Uint8Array([1]))).toBe('AQ');
  });
});
