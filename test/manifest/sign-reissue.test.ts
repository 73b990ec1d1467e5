import { describe, expect, it } from 'vitest';
import {
  attestationBindsManifest,
  checkManifestSignature,
  isJsonObject,
  ManifestError,
  manifestIndexFields,
  parseJson,
  reissueManifest,
  type Signer,
  signManifest,
  uuidv7,
  verifyManifest,
} from '../../src/manifest/index';
import { SIGNED_AT, shared, testSigner, testTrustedKeys, upstream, validSigned } from './vectors';

const NOW = new Date('2026-06-05T10:35:00.123Z');
const unsigned = shared.manifests[1]!.unsigned_json;
/** These tests are about bytes and signatures; the SDK vectors they use are not schema-valid on purpose. */
const signatureVerifies = (text: string): boolean => {
  const root = parseJson(text);
  return isJsonObject(root) && checkManifestSignature(root, testTrustedKeys()).ok;
};

describe('signManifest', () => {
  it('replaces an existing signature block in place, keeping every other byte', async () => {
    const signed = shared.manifests[0]!.signed_json;
    const { text } = await signManifest(signed, testSigner, { signedAt: new Date('2027-01-01T00:00:00Z') });
    expect(text).toBe(
      signed.replace('"signed_at": "2026-06-05T10:00:00Z"', '"signed_at": "2027-01-01T00:00:00Z"'),
    );
  });

  it('keeps a compact document compact', async () => {
    const { text } = await signManifest('{"manifest_id":"m","version":"0.1"}', testSigner, {
      signedAt: SIGNED_AT,
    });
    expect(
      text.startsWith('{"manifest_id":"m","version":"0.1","signature":{"algorithm":"Ed25519","key_id":"'),
    ).toBe(true);
  });

  it('writes the block indented in an indented document, and keeps the trailing newline', async () => {
    const pretty = '{\n  "manifest_id": "m",\n  "version": "0.1"\n}\n';
    const { text } = await signManifest(pretty, testSigner, { signedAt: SIGNED_AT });
    expect(text).toMatch(
      /^\{\n {2}"manifest_id": "m",\n {2}"version": "0\.1",\n {2}"signature": \{\n {4}"algorithm": "Ed25519",\n/,
    );
    expect(text.endsWith('\n  }\n}\n')).toBe(true);
    expect(JSON.parse(text).signature.signed_at).toBe('2026-06-05T10:00:00Z');
  });

  it('preserves number texts and escapes that a JSON round trip would change', async () => {
    const odd =
      '{"manifest_id":"m","version":"0.1","data_scope":{"r":1.50,"big":123456789012345678901234567890,"s":"\\u00e9"}}';
    const { text } = await signManifest(odd, testSigner, { signedAt: SIGNED_AT });
    expect(text.startsWith(odd.slice(0, -1))).toBe(true);
    expect(signatureVerifies(text)).toBe(true);
  });

  it('writes key_type from the signer (hsm for an HSM-held key)', async () => {
    const hsm: Signer = { ...testSigner, keyType: 'hsm', sign: testSigner.sign };
    const { signature } = await signManifest(unsigned, hsm, { signedAt: SIGNED_AT });
    expect(signature.key_type).toBe('hsm');
  });

  it('refuses a signer that returns something other than 64 bytes', async () => {
    const broken: Signer = { ...testSigner, sign: async () => new Uint8Array(63) };
    await expect(signManifest(unsigned, broken, { signedAt: SIGNED_AT })).rejects.toThrow(/63 bytes/);
  });

  it('refuses to put an Ed25519 signature on a post-quantum manifest', async () => {
    const pq = unsigned.replace('"crypto_profile": "standard"', '"crypto_profile": "post-quantum"');
    await expect(signManifest(pq, testSigner, { signedAt: SIGNED_AT })).rejects.toThrow(/downgrade/);
  });

  it('refuses a document that is not an object', async () => {
    await expect(signManifest('[1]', testSigner, { signedAt: SIGNED_AT, source: 'a.json' })).rejects.toThrow(
      /^a\.json: is not a JSON object$/,
    );
  });
});

describe('reissueManifest (spec 3.8)', () => {
  it('spec 2.2: the twin carries the original log entry, byte for byte and signed, as prior_transparency_log_entry', async () => {
    const entry =
      '{"log_id": "ab", "log_index": 18446744073709551617, "entry_uuid": "e1", "integrated_time": 1780000000, ' +
      '"inclusion_proof": {"checkpoint": "c", "hashes": ["h"], "tree_size": 18446744073709551618}}';
    const original = `${(await validSigned()).slice(0, -1)}, "transparency_log_entry": ${entry}}`;
    const r = await reissueManifest(original, testSigner, { now: NOW });
    expect(r.priorTransparencyLogEntry).toBe(true);
    // The original is compact, so the member is written compact; its value keeps its exact text.
    expect(r.text).toContain(`"prior_transparency_log_entry":${entry}`);
    const twin = JSON.parse(r.text);
    expect(twin.transparency_log_entry).toBeUndefined();
    expect(twin.prior_transparency_log_entry.entry_uuid).toBe('e1');
    // Signed: changing it breaks the signature; the twin is VALID as a whole.
    expect(verifyManifest(r.text, { trustedKeys: testTrustedKeys(), now: NOW }).result).toBe('VALID');
    expect(signatureVerifies(r.text.replace('"entry_uuid": "e1"', '"entry_uuid": "e2"'))).toBe(false);
  });

  it('spec 2.2: a manifest with no log entry gives a twin with neither field (an inherited prior entry is dropped)', async () => {
    const prior = {
      log_id: 'ab',
      log_index: 1,
      entry_uuid: 'old',
      integrated_time: 1,
      inclusion_proof: { checkpoint: 'c', hashes: [], tree_size: 1 },
    };
    const original = await validSigned({ prior_transparency_log_entry: prior });
    const r = await reissueManifest(original, testSigner, { now: NOW });
    expect(r.priorTransparencyLogEntry).toBe(false);
    const twin = JSON.parse(r.text);
    expect(twin.prior_transparency_log_entry).toBeUndefined();
    expect(twin.transparency_log_entry).toBeUndefined();
    expect(verifyManifest(r.text, { trustedKeys: testTrustedKeys(), now: NOW }).result).toBe('VALID');
  });

  it('gives a new UUID v7 id, points at the old one, stamps issued_at, signs', async () => {
    const r = await reissueManifest(unsigned, testSigner, { now: NOW });
    const out = JSON.parse(r.text);
    expect(r.previousManifestId).toBe('0190b6e0-0001-7000-8000-000000000001');
    expect(out.manifest_id).toBe(r.manifestId);
    expect(r.manifestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(r.manifestId.replace(/-/g, '').slice(0, 12), 16)).toBe(NOW.getTime());
    expect(out.previous_manifest_id).toBe(r.previousManifestId);
    expect(out.issued_at).toBe('2026-06-05T10:35:00Z');
    expect(out.signature.signed_at).toBe('2026-06-05T10:35:00Z');
    expect(r.attestationDropped).toBe(false);
    expect(signatureVerifies(r.text)).toBe(true);
  });

  it('changes only manifest_id, previous_manifest_id, issued_at, attestation and signature', async () => {
    const r = await reissueManifest(unsigned, testSigner, {
      now: NOW,
      newManifestId: '0190b6e0-aaaa-7000-8000-000000000001',
    });
    const before = JSON.parse(unsigned);
    const after = JSON.parse(r.text);
    for (const k of ['manifest_id', 'previous_manifest_id', 'issued_at', 'signature']) {
      delete before[k];
      delete after[k];
    }
    expect(after).toEqual(before);
    // previous_manifest_id lands right after manifest_id; other members keep their text.
    expect(r.text).toContain(
      '"manifest_id": "0190b6e0-aaaa-7000-8000-000000000001", "previous_manifest_id": "0190b6e0-0001-7000-8000-000000000001", "agent_id"',
    );
  });

  it('overwrites an existing previous_manifest_id in place', async () => {
    const m = shared.manifests[4]!.unsigned_json;
    const r = await reissueManifest(m, testSigner, { now: NOW });
    expect(JSON.parse(r.text).previous_manifest_id).toBe('0190b6e0-0004-7000-8000-000000000004');
    expect(r.text.match(/"previous_manifest_id": /g)).toHaveLength(1);
  });

  it('AM-VEC-021: drops the stale attestation and reports it', async () => {
    const vec = upstream('AM-VEC-021');
    const text = JSON.stringify(vec.manifest, null, 2);
    const root = parseJson(text);
    if (!isJsonObject(root)) throw new Error('object expected');
    // The carried-forward attestation does not bind this document (the vector's MISMATCH).
    expect(attestationBindsManifest(root)).toBe(false);
    const r = await reissueManifest(text, testSigner, { now: NOW });
    expect(r.attestationDropped).toBe(true);
    expect(JSON.parse(r.text).attestation).toBeUndefined();
    expect(manifestIndexFields(r.text).hasAttestation).toBe(false);
    expect(signatureVerifies(r.text)).toBe(true);
  });

  it('AM-VEC-018: an attestation that binds its document is recognized as binding', () => {
    const root = parseJson(JSON.stringify(upstream('AM-VEC-018').manifest));
    if (!isJsonObject(root)) throw new Error('object expected');
    expect(attestationBindsManifest(root)).toBe(true);
  });

  it('writes a duplicated member once, at its first position', async () => {
    const dup =
      '{"manifest_id":"a","version":"0.1","signature":{"old":1},"issued_at":"x","signature":{"old":2}}';
    const r = await reissueManifest(dup, testSigner, { now: NOW, newManifestId: 'b' });
    expect(r.text.match(/"signature"/g)).toHaveLength(1);
    expect(
      r.text.startsWith(
        '{"manifest_id":"b","previous_manifest_id":"a","version":"0.1","signature":{"algorithm"',
      ),
    ).toBe(true);
  });

  it('refuses a manifest without a string manifest_id, naming the source', async () => {
    await expect(
      reissueManifest('{"version":"0.1"}', testSigner, { now: NOW, source: 'x.json' }),
    ).rejects.toThrow(/^x\.json: has no string manifest_id to re-issue$/);
    await expect(reissueManifest('{"manifest_id":7}', testSigner, { now: NOW })).rejects.toBeInstanceOf(
      ManifestError,
    );
  });
});

describe('uuidv7', () => {
  it('lays out time, version, variant and randomness as RFC 9562 says', () => {
    const id = uuidv7(new Date(0x0190b6e01234), new Uint8Array([0xff, 0xee, 0xff, 1, 2, 3, 4, 5, 6, 7]));
    expect(id).toBe('0190b6e0-1234-7fee-bf01-020304050607');
  });

  it('differs between calls in the same millisecond', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => uuidv7(NOW)));
    expect(ids.size).toBe(1000);
  });
});

describe('manifestIndexFields', () => {
  it('extracts the store columns', () => {
    expect(manifestIndexFields(shared.manifests[4]!.signed_json)).toEqual({
      manifestId: '0190b6e0-0004-7000-8000-000000000004',
      agentId: 'spiffe://trust.example/agent/a4',
      keyId: shared.key.key_id,
      issuedAt: '2026-01-05T00:00:00Z',
      expiresAt: '2099-12-31T23:59:59Z',
      previousManifestId: '0190b6e0-ffff-7000-8000-000000000000',
      hasAttestation: false,
    });
  });

  it('throws a ManifestError without a string manifest_id', () => {
    expect(() => manifestIndexFields('{"agent_id":"a"}', 'row 7')).toThrow(
      /^row 7: field manifest_id: has no manifest_id string$/,
    );
  });
});
