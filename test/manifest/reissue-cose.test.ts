/**
 * Re-issue as v0.2: a v0.2 envelope's twin, and the v0.1 -> v0.2 migration with each conversion
 * rule, and the refusals where the spec defines no conversion.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  b64urlDecode,
  CborMap,
  CONTEXT_V01,
  CONTEXT_V02,
  decodeEnvelope,
  encodeCbor,
  encodeSign1,
  examineEnvelope,
  reissueCoseEnvelope,
  reissueManifest,
  reissueV01AsCose,
  signCoseManifest,
  signManifest,
  softwareSigner,
  stringifyJson,
  toPlain,
  verifyCoseEnvelope,
} from '../../src/manifest/index';

const VECTORS = join(import.meta.dirname, '../fixtures/vectors');
const sdk = JSON.parse(readFileSync(join(VECTORS, 'reference-sdk-cose-shared.json'), 'utf8')) as {
  key: { seed_b64url: string; public_b64url: string; key_id: string };
  vectors: { manifest_json: string; envelope_hex: string }[];
};
const oldSigner = softwareSigner(b64urlDecode(sdk.key.seed_b64url));
const newSigner = softwareSigner(randomBytes(32));
const now = new Date('2026-11-30T12:00:00Z');
const trusted = new Map([[newSigner.keyId, newSigner.publicKey]]);
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
// biome-ignore lint/suspicious/noExplicitAny: payloads are arbitrary JSON
const payloadOf = (env: Uint8Array): Record<string, any> => toPlain(examineEnvelope(env).manifest) as never;

/** A v0.1 manifest as an issuer holds it: signed, with a log entry, an attestation and approvals. */
async function v01Manifest(extra: Record<string, unknown> = {}): Promise<string> {
  const doc = {
    '@context': CONTEXT_V01,
    '@type': 'AgentManifest',
    manifest_id: '0190b6e0-0300-7000-8000-000000000001',
    agent_id: 'spiffe://trust.example/agent/legacy',
    version: '0.1',
    issued_at: '2026-11-01T00:00:00Z',
    expires_at: '2027-01-31T00:00:00Z',
    issuer: 'spiffe://trust.example/signing-authority',
    crypto_profile: 'standard',
    artifacts: { system_prompt: { hash: `sha256:${'a'.repeat(64)}` } },
    hitl_record: { required: true, approvals: [{ approver: 'x', approval_signature: 'y' }] },
    attestation: { platform: 'amd-sev-snp', manifest_hash_in_report: `sha256:${'b'.repeat(64)}` },
    transparency_log_entry: {
      log_id: 'c'.repeat(64),
      log_index: 42,
      entry_uuid: 'e'.repeat(64),
      integrated_time: 1764547200,
      inclusion_proof: { checkpoint: 'cp', hashes: ['d'.repeat(64)], tree_size: 43 },
    },
    ...extra,
  };
  return (await signManifest(JSON.stringify(doc), oldSigner, { signedAt: now })).text;
}

describe('re-issue of a v0.2 envelope', () => {
  it('new UUID v7 id, previous_manifest_id, new issued_at, signed by the new key; everything else unchanged', async () => {
    for (const v of sdk.vectors) {
      const original = hex(v.envelope_hex);
      const r = await reissueCoseEnvelope(original, newSigner, { now });
      const before = payloadOf(original);
      const after = payloadOf(r.envelope);
      expect(after.manifest_id).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(after.manifest_id).not.toBe(before.manifest_id);
      expect(after.previous_manifest_id).toBe(before.manifest_id);
      expect(after.issued_at).toBe('2026-11-30T12:00:00Z');
      const { manifest_id, previous_manifest_id, issued_at, prior_transparency_log_entry, ...rest } = after;
      const {
        manifest_id: _a,
        previous_manifest_id: _b,
        issued_at: _c,
        prior_transparency_log_entry: _d,
        ...restBefore
      } = before;
      expect(rest).toEqual(restBefore);
      const verdict = verifyCoseEnvelope(r.envelope, { trustedKeys: trusted, now });
      expect(verdict).toMatchObject({ result: 'VALID', keyId: newSigner.keyId });
      expect(decodeEnvelope(r.envelope).unprotected.size).toBe(0);
    }
  });

  it('drops and reports what the unprotected header carried; refuses a receipt it cannot reference', async () => {
    const env = decodeEnvelope(hex(sdk.vectors[0]!.envelope_hex));
    const withExtras = encodeSign1({
      protectedBytes: env.protectedBytes,
      unprotected: CborMap.of([
        ['agent-manifest-attestation', CborMap.of([['platform', 'amd-sev-snp']])],
        ['agent-manifest-approvals', []],
      ]),
      payload: env.payload!,
      signature: env.signature!,
    });
    const r = await reissueCoseEnvelope(withExtras, newSigner, { now });
    expect(r.dropped).toEqual(['attestation (unprotected header)', 'approvals (unprotected header)']);
    const withReceipt = encodeSign1({
      protectedBytes: env.protectedBytes,
      unprotected: CborMap.of([[394, [new Uint8Array([0xd2])]]]),
      payload: env.payload!,
      signature: env.signature!,
    });
    await expect(reissueCoseEnvelope(withReceipt, newSigner, { now })).rejects.toThrow(
      /manifest_id 0190b6e0-0200-7000-8000-000000000000: carries a SCITT receipt .* not guessed/,
    );
  });

  it('refuses a twin whose validity window would break (under 1 hour left)', async () => {
    const doc = JSON.parse(sdk.vectors[0]!.manifest_json);
    doc.expires_at = '2026-11-30T12:30:00Z';
    const { envelope } = await signCoseManifest(JSON.stringify(doc), oldSigner);
    await expect(reissueCoseEnvelope(envelope, newSigner, { now })).rejects.toThrow(
      /expires_at 2026-11-30T12:30:00Z is less than 1 hour after the new issued_at/,
    );
  });

  it('refuses a hybrid COSE_Sign with the reason', async () => {
    const env = decodeEnvelope(hex(sdk.vectors[0]!.envelope_hex));
    const body = encodeCbor(
      CborMap.of([
        [3, 'application/agent-manifest+json'],
        [16, 'application/agent-manifest+cose'],
      ]),
    );
    const entry = (alg: number) => [
      encodeCbor(
        CborMap.of([
          [1, alg],
          [4, hex(sdk.key.key_id)],
        ]),
      ),
      new CborMap(),
      new Uint8Array(64),
    ];
    const { CborTag } = await import('../../src/manifest/cbor');
    const hybrid = encodeCbor(new CborTag(98, [body, new CborMap(), env.payload!, [entry(-19), entry(-49)]]));
    await expect(reissueCoseEnvelope(hybrid, newSigner, { now })).rejects.toThrow(
      /hybrid Ed25519 \+ ML-DSA-65 COSE_Sign: re-issuing it needs an ML-DSA-65 signature/,
    );
  });
});

describe('migration: re-issue of a v0.1 manifest as v0.2', () => {
  it('applies each conversion rule and verifies under the new key', async () => {
    const r = await reissueV01AsCose(await v01Manifest(), newSigner, { now });
    const p = payloadOf(r.envelope);
    expect(p.version).toBe('0.2');
    expect(p['@context']).toBe(CONTEXT_V02);
    expect(p.signature).toBeUndefined();
    expect(p.attestation).toBeUndefined();
    expect(p.transparency_log_entry).toBeUndefined();
    expect(p.prior_transparency_log_entry).toMatchObject({ log_index: 42, entry_uuid: 'e'.repeat(64) });
    expect(p.hitl_record).toEqual({ required: true });
    expect(p.previous_manifest_id).toBe('0190b6e0-0300-7000-8000-000000000001');
    expect(p.artifacts).toEqual({ system_prompt: { hash: `sha256:${'a'.repeat(64)}` } });
    expect(r.converted).toBe(true);
    expect(r.dropped).toEqual(['attestation', 'hitl_record.approvals (1)']);
    expect(verifyCoseEnvelope(r.envelope, { trustedKeys: trusted, now })).toMatchObject({
      result: 'VALID',
      upstream: 'VALID',
    });
  });

  it('refuses what the spec does not define, naming the manifest and field', async () => {
    const id = /0190b6e0-0300-7000-8000-000000000001/;
    await expect(reissueV01AsCose(await v01Manifest({ x_note: 'hi' }), newSigner, { now })).rejects.toThrow(
      /field x_note: member\(s\) "x_note" sit outside v0\.1's signed_fields/,
    );
    await expect(
      reissueV01AsCose(await v01Manifest({ '@context': 'https://example.org/ctx' }), newSigner, { now }),
    ).rejects.toThrow(/field @context: @context "https:\/\/example\.org\/ctx": only the v0\.1 context URLs/);
    const pq = (await v01Manifest()).replace(
      '"crypto_profile":"standard"',
      '"crypto_profile":"post-quantum"',
    );
    expect(pq).toContain('post-quantum');
    await expect(reissueV01AsCose(pq, newSigner, { now })).rejects.toThrow(id);
    await expect(reissueV01AsCose(pq, newSigner, { now })).rejects.toThrow(/ML-DSA-65/);
    const dup = (await v01Manifest()).replace('"issuer":', '"issuer":"spiffe://x/y","issuer":');
    await expect(reissueV01AsCose(dup, newSigner, { now })).rejects.toThrow(/"issuer" appears twice/);
  });

  it('a v0.1 signature block is never written on a version 0.2 document', async () => {
    const doc = sdk.vectors[0]!.manifest_json;
    await expect(signManifest(doc, newSigner, { signedAt: now })).rejects.toThrow(/COSE_Sign1 envelope/);
    await expect(reissueManifest(doc, newSigner, { now })).rejects.toThrow(/COSE_Sign1 envelope/);
    expect(stringifyJson).toBeTypeOf('function');
  });
});
