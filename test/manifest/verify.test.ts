import { beforeAll, describe, expect, it } from 'vitest';
import {
  b64urlEncode,
  checkManifestSignature,
  isJsonObject,
  keyIdOf,
  parseJson,
  publicKeyFromSeed,
  verifyManifest,
} from '../../src/manifest/index';
import type { Loose } from './vectors';
import { shared, testTrustedKeys, upstream, validSigned } from './vectors';

const NOW = new Date('2026-06-05T12:00:00Z');
const ctx = () => ({ trustedKeys: testTrustedKeys(), now: NOW });
const vectorText = (id: string) => JSON.stringify(upstream(id).manifest);

/**
 * The upstream vectors test artifact bindings and signatures, and omit members the spec's schema
 * requires (every artifact binding lacks its version, classification, bound_at...): the SDK's
 * verify path tolerates absent members, and its model validators (the validity window among them)
 * do not run on such a document. rotor's verdict is never looser than the SDK's, so it calls
 * them INVALID and names the first missing member; their signatures are checked on their own.
 */
describe('upstream conformance vectors (the parts rotor checks)', () => {
  const ids = Array.from({ length: 23 }, (_, i) => `AM-VEC-${String(i + 1).padStart(3, '0')}`);

  it.each(ids)('%s: rotor never says VALID where the SDK does not', (id) => {
    const vec = upstream(id);
    const verdict = verifyManifest(vectorText(id), ctx());
    if (vec.expected.result !== 'VALID') expect(verdict.result).not.toBe('VALID');
    // Every upstream vector omits required binding members: INVALID, naming the member.
    if (id !== 'AM-VEC-007') expect(verdict.reason).toMatch(/^schema: artifacts\.\w+\.\w+: is required/);
  });

  it.each(['AM-VEC-001', 'AM-VEC-002', 'AM-VEC-008', 'AM-VEC-020', 'AM-VEC-005', 'AM-VEC-018', 'AM-VEC-019'])(
    '%s: the signature verifies exactly when the vector says so',
    (id) => {
      const vec = upstream(id);
      const root = parseJson(vectorText(id));
      if (!isJsonObject(root)) throw new Error('vector is not an object');
      const check = checkManifestSignature(root, testTrustedKeys());
      if (vec.expected.signature_verified !== undefined)
        expect(check.ok).toBe(vec.expected.signature_verified);
      else expect(check.ok).toBe(vec.expected.result === 'VALID');
    },
  );

  it('AM-VEC-005: an unsigned manifest fails the signature check as unsigned', () => {
    const root = parseJson(vectorText('AM-VEC-005'));
    if (!isJsonObject(root)) throw new Error('vector is not an object');
    expect(checkManifestSignature(root, testTrustedKeys())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/unsigned/),
    });
  });

  it('AM-VEC-006: a signed manifest with no trusted keys fails as an unknown key', () => {
    const root = parseJson(vectorText('AM-VEC-006'));
    if (!isJsonObject(root)) throw new Error('vector is not an object');
    expect(checkManifestSignature(root, new Map())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not a trusted key/),
    });
  });

  it('AM-VEC-007: an unsupported manifest version is INVALID before anything else', () => {
    expect(verifyManifest(vectorText('AM-VEC-007'), ctx())).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/version/),
    });
  });

  it('AM-VEC-008: agent_id altered after signing does not verify', () => {
    const root = parseJson(vectorText('AM-VEC-008'));
    if (!isJsonObject(root)) throw new Error('vector is not an object');
    expect(checkManifestSignature(root, testTrustedKeys())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/does not verify/),
    });
  });

  it('AM-VEC-020: a post-quantum profile carrying only an Ed25519 signature is a downgrade', () => {
    const root = parseJson(vectorText('AM-VEC-020'));
    if (!isJsonObject(root)) throw new Error('vector is not an object');
    expect(checkManifestSignature(root, testTrustedKeys())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/downgrade/),
    });
  });
});

describe('verifyManifest', () => {
  let signed = '';
  beforeAll(async () => {
    signed = await validSigned();
  });
  const mutate = (fn: (m: Loose) => void) => {
    const m = JSON.parse(signed);
    fn(m);
    return JSON.stringify(m);
  };

  it('checks revocation before expiry and expiry before the signature, as the SDK does', () => {
    const expiredAndTampered = mutate((m) => {
      m.issued_at = '2000-12-01T00:00:00Z';
      m.expires_at = '2001-01-01T00:00:00Z';
      m.agent_id = 'spiffe://trust.example/agent/x';
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
    ['hybrid algorithm', (m: Loose) => (m.signature.algorithm = 'hybrid-Ed25519-ML-DSA-65'), /hybrid/],
    ['post-quantum profile', (m: Loose) => (m.crypto_profile = 'post-quantum'), /downgrade/],
    [
      'hybrid profile (not a profile the spec defines)',
      (m: Loose) => (m.crypto_profile = 'hybrid'),
      /crypto_profile/,
    ],
    ['unknown key', (m: Loose) => (m.signature.key_id = 'ab'.repeat(32)), /not a trusted key/],
    [
      'prefixed key id',
      (m: Loose) => (m.signature.key_id = `sha256:${m.signature.key_id}`),
      /not a trusted key/,
    ],
    ['missing key_id', (m: Loose) => delete m.signature.key_id, /signature\.key_id: is required/],
    [
      'missing signature_value',
      (m: Loose) => delete m.signature.signature_value,
      /signature\.signature_value: is required/,
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
    ['no signature block', (m: Loose) => delete m.signature, /unsigned/],
    ['empty signature block', (m: Loose) => (m.signature = {}), /signature\.algorithm: is required/],
    ['signature not an object', (m: Loose) => (m.signature = 'x'), /signature: must be an object/],
    ['malformed expires_at', (m: Loose) => (m.expires_at = 'tomorrow'), /expires_at/],
    ['missing manifest_id', (m: Loose) => delete m.manifest_id, /manifest_id/],
    ['missing version', (m: Loose) => delete m.version, /version/],
    ['tampered hitl-free member', (m: Loose) => (m.issuer = 'spiffe://evil'), /does not verify/],
    ['unknown member', (m: Loose) => (m.intent.score = 0.9), /schema: intent\.score: is not a member/],
    ['issued in the future', (m: Loose) => (m.issued_at = '2026-06-06T00:00:00Z'), /in the future/],
    [
      'validity window under an hour',
      (m: Loose) => (m.expires_at = '2026-06-01T00:59:59Z'),
      /at least 1 hour/,
    ],
  ])('%s is INVALID', (_name, fn, reason) => {
    const verdict = verifyManifest(mutate(fn), ctx());
    expect(verdict.result).toBe('INVALID');
    expect(verdict.reason).toMatch(reason);
  });

  it('approvals added after signing do not break the signature (they are outside the pre-image)', async () => {
    const m = JSON.parse(await validSigned());
    m.hitl_record.approvals.push({
      approval_id: '0190b6e0-0000-7000-8000-0000000000aa',
      approver_id: 'mailto:approver@trust.example',
      approver_identity_type: 'email',
      approver_role: 'ciso-delegate',
      approved_at: '2026-06-02T00:00:00Z',
      approved_scope: { artifacts: ['system_prompt'], risk_tier: 'low', approval_duration_seconds: 86400 },
      approval_signature: 'c2ln',
      approval_method: 'hardware-key',
      evidence_uri: 'https://evidence.example/1',
    });
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
