import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  canonicalize,
  checkManifestSignature,
  isJsonObject,
  keyIdOf,
  manifestSchemaProblems,
  parseJson,
  parseTimestamp,
  readCrl,
  revocationPreImage,
  SIGNED_FIELDS,
  signingPreImage,
  signManifest,
  signRevocation,
  verifyManifest,
  verifyRevocationLine,
} from '../../src/manifest/index';
import { SIGNED_AT, shared, testPublicKey, testSigner, testTrustedKeys } from './vectors';

describe('reference SDK shared vectors', () => {
  it('the test key is what the vectors say', () => {
    expect(keyIdOf(testPublicKey)).toBe(shared.key.key_id);
    expect(testSigner.keyId).toBe(shared.key.key_id);
  });

  it('SIGNED_FIELDS is the normative list, in the SDK order', () => {
    expect([...SIGNED_FIELDS]).toEqual(shared.signed_fields);
  });

  describe.each(shared.canonical.map((c, i) => [i, c] as const))('canonical case %i', (_i, c) => {
    it(`canonicalizes ${c.json.slice(0, 60)}`, () => {
      const value = parseJson(c.json);
      expect(canonicalize(value)).toBe(c.canonical);
      expect(Buffer.from(canonicalBytes(value)).toString('base64url')).toBe(c.canonical_b64);
    });
  });

  describe.each(shared.manifests.map((m, i) => [i, m] as const))('manifest %i', (_i, m) => {
    it('has the SDK pre-image', () => {
      expect(Buffer.from(signingPreImage(parseJson(m.unsigned_json))).toString('base64url')).toBe(
        m.pre_image_b64,
      );
    });

    it('signs to the SDK signature block (Ed25519 is deterministic)', async () => {
      const { text, signature } = await signManifest(m.unsigned_json, testSigner, { signedAt: SIGNED_AT });
      expect(signature).toEqual(m.signature);
      // The signed text carries the same pre-image and verifies.
      expect(Buffer.from(signingPreImage(parseJson(text))).toString('base64url')).toBe(m.pre_image_b64);
      const root = parseJson(text);
      expect(isJsonObject(root) && checkManifestSignature(root, testTrustedKeys()).ok).toBe(true);
    });

    it("verifies the signature of the SDK's own signed manifest", () => {
      const root = parseJson(m.signed_json);
      if (!isJsonObject(root)) throw new Error('object expected');
      expect(checkManifestSignature(root, testTrustedKeys())).toEqual({ ok: true, keyId: shared.key.key_id });
    });

    it('is judged on its schema as the SDK judges it (these vectors test bytes, not validity)', () => {
      // test/fixtures/vectors/README.md: several carry members the spec's schema refuses, and the
      // SDK's verify_manifest calls those MISMATCH. rotor's verdict says INVALID and names the member.
      const verdict = verifyManifest(m.signed_json, { trustedKeys: testTrustedKeys(), now: SIGNED_AT });
      const problems = manifestSchemaProblems(parseJson(m.signed_json));
      if (problems.length > 0)
        expect(verdict).toMatchObject({ result: 'INVALID', reason: expect.stringMatching(/^schema: /) });
      else expect(verdict.result).toBe('VALID');
    });
  });

  it('writes the same text as the SDK where the input already uses its layout and escaping', async () => {
    // Manifest 2 spells non-ASCII as \u escapes, which the SDK re-serializes raw; rotor keeps the text.
    for (const i of [0, 1, 3, 4]) {
      const m = shared.manifests[i]!;
      const { text } = await signManifest(m.unsigned_json, testSigner, { signedAt: SIGNED_AT });
      expect(text).toBe(m.signed_json);
    }
  });

  describe.each(shared.revocations.map((r, i) => [i, r] as const))('revocation %i', (_i, r) => {
    const record = JSON.parse(r.jsonl_line);

    it('has the SDK pre-image (revoked_at as Python isoformat)', () => {
      const ts = parseTimestamp(record.revoked_at);
      if (typeof ts === 'string') throw new Error(ts);
      const pre = revocationPreImage({
        manifestId: record.manifest_id,
        revokedAt: ts,
        reason: record.reason,
        revokedBy: record.revoked_by,
      });
      expect(Buffer.from(pre).toString('utf8')).toBe(r.pre_image);
    });

    it('signs to the exact SDK line', async () => {
      const { line, record: rec } = await signRevocation(
        {
          manifestId: record.manifest_id,
          reason: record.reason,
          revokedBy: record.revoked_by,
          revokedAt: record.revoked_at,
        },
        testSigner,
      );
      expect(line).toBe(r.jsonl_line);
      expect(rec.revocationSignature).toBe(record.revocation_signature);
    });

    it('verifies the SDK line', () => {
      const verdict = verifyRevocationLine(r.jsonl_line, testTrustedKeys());
      expect(verdict.ok).toBe(true);
    });
  });

  it('accepts exactly the CRL records the SDK FileCRL keeps, and says why it drops the others', async () => {
    const report = await readCrl(shared.crl.jsonl, testTrustedKeys());
    expect(report.accepted.map((r) => r.manifestId)).toEqual(shared.crl.accepted_manifest_ids);
    expect(report.rejected.map((r) => r.line)).toEqual([4, 5, 6]);
    expect(report.rejected[0]!.reason).toMatch(/does not verify/);
    expect(report.rejected[1]!.reason).toMatch(/unsigned/);
    expect(report.rejected[2]!.reason).toMatch(/^not JSON/);
  });

  it('a CRL read line by line (iterable, bytes) gives the same report as the whole text', async () => {
    const lines = shared.crl.jsonl.split('\n').map((l) => Buffer.from(l, 'utf8'));
    const fromBytes = await readCrl(lines, testTrustedKeys());
    const fromText = await readCrl(shared.crl.jsonl, testTrustedKeys());
    expect(fromBytes).toEqual(fromText);
  });
});
