/**
 * Verify before trust for v0.2: decideReissue reads a stored COSE_Sign1 envelope and declines, by
 * the same rules and codes as for v0.1, every one the rotation must not sign; only the signature
 * check differs (the COSE_Sign1 over its Sig_structure under the registry's key for the kid).
 */
import { describe, expect, it } from 'vitest';
import { CborMap, CborTag, encodeCbor } from '../../src/manifest/cbor';
import {
  convertV01ToV02,
  decideReissue,
  decodeEnvelope,
  encodeSign1,
  ManifestError,
  parseStoredCopy,
  publicKeyFromSeed,
  type RegistryKey,
  type ReissueFacts,
  type Signer,
  signCoseRoot,
  sigStructure1,
  softwareSigner,
  unreadableCode,
} from '../../src/manifest/index';
import { type Loose, shared, testPublicKey, testSigner, upstreamEnvelope, validUnsigned } from './vectors';

const NOW = new Date('2026-06-05T12:00:00Z');
const otherSeed = new Uint8Array(32).fill(3);
const otherSigner = softwareSigner(otherSeed);
const registry = new Map<string, RegistryKey>([
  [shared.key.key_id, { keyId: shared.key.key_id, identity: 'payments', publicKey: testPublicKey }],
  [
    otherSigner.keyId,
    { keyId: otherSigner.keyId, identity: 'billing', publicKey: publicKeyFromSeed(otherSeed) },
  ],
]);
const facts = (extra: Partial<ReissueFacts> = {}): ReissueFacts => ({
  lookupKey: (k) => registry.get(k),
  identity: 'payments',
  fromKeyId: shared.key.key_id,
  now: NOW,
  ...extra,
});

/** A v0.2 envelope of `m` (a v0.1-shaped document, converted by the migration's rules). */
async function envelopeOf(m: Loose, signer: Signer = testSigner): Promise<Uint8Array> {
  const { manifest } = convertV01ToV02(JSON.stringify(m));
  return (await signCoseRoot(manifest, signer)).envelope;
}
const decide = (envelope: Uint8Array, extra: Partial<ReissueFacts> = {}) =>
  decideReissue(parseStoredCopy({ text: null, envelope }), facts(extra));

/** What parseStoredCopy makes of an envelope it cannot read: the decline code and the reason. */
function unreadable(envelope: Uint8Array): { code: string; reason: string } {
  try {
    parseStoredCopy({ text: null, envelope });
  } catch (err) {
    if (err instanceof ManifestError) return { code: unreadableCode(err), reason: err.message };
    throw err;
  }
  throw new Error('the envelope was read');
}

describe('decideReissue on v0.2 envelopes', () => {
  it('a valid envelope of the rotated key may be re-issued', async () => {
    expect(decide(await envelopeOf(validUnsigned()))).toMatchObject({
      ok: true,
      keyId: shared.key.key_id,
      manifestId: '0190b6e0-0000-7000-8000-000000000000',
    });
  });

  it('a forged envelope (kid naming the rotated key, signed by another key) is declined: bad-signature', async () => {
    const genuine = decodeEnvelope(await envelopeOf(validUnsigned()));
    const forged = encodeSign1({
      protectedBytes: genuine.protectedBytes,
      payload: genuine.payload!,
      signature: await otherSigner.sign(sigStructure1(genuine.protectedBytes, genuine.payload!)),
    });
    expect(decide(forged)).toMatchObject({
      ok: false,
      code: 'bad-signature',
      reason: expect.stringMatching(
        new RegExp(`^COSE_Sign1 does not verify under ${shared.key.key_id}: .*does not verify`),
      ),
    });
  });

  it('a payload changed after signing is declined: bad-signature', async () => {
    const genuine = decodeEnvelope(await envelopeOf(validUnsigned()));
    const other = decodeEnvelope(
      await envelopeOf(validUnsigned({ agent_id: 'spiffe://trust.example/agent/evil' })),
    );
    const swapped = encodeSign1({
      protectedBytes: genuine.protectedBytes,
      payload: other.payload!,
      signature: genuine.signature!,
    });
    expect(decide(swapped)).toMatchObject({ ok: false, code: 'bad-signature' });
  });

  it('the registry key must be the one signed with: a kid whose registered key differs does not verify', async () => {
    const wrong = new Map(registry);
    wrong.set(shared.key.key_id, {
      keyId: shared.key.key_id,
      identity: 'payments',
      publicKey: publicKeyFromSeed(otherSeed),
    });
    const envelope = await envelopeOf(validUnsigned());
    expect(
      decideReissue(parseStoredCopy({ text: null, envelope }), {
        ...facts(),
        lookupKey: (k) => wrong.get(k),
      }),
    ).toMatchObject({ ok: false, code: 'bad-signature' });
  });

  it('an unknown kid and another identity’s key are declined before any signature is checked', async () => {
    const stranger = softwareSigner(new Uint8Array(32).fill(9));
    expect(decide(await envelopeOf(validUnsigned(), stranger), { fromKeyId: undefined })).toEqual({
      ok: false,
      code: 'unknown-key',
      reason: `unknown key ${stranger.keyId}: not in rotor's key registry`,
    });
    const foreign = await envelopeOf(validUnsigned(), otherSigner);
    expect(decide(foreign, { fromKeyId: undefined })).toMatchObject({ ok: false, code: 'foreign-key' });
    expect(decide(foreign)).toMatchObject({ ok: false, code: 'foreign-key' });
  });

  it('a schema-invalid payload is declined with the failing field, even with a good signature (ADR-0012: the schema does not change)', async () => {
    const m = validUnsigned();
    m.intent.score = 0.95;
    expect(decide(await envelopeOf(m))).toMatchObject({
      ok: false,
      code: 'schema',
      reason: expect.stringMatching(/^schema: intent\.score: /),
    });
  });

  it('the validity rules are v0.1’s: expired, under an hour left, revoked, stored after the cut-off', async () => {
    const expired = await envelopeOf(
      validUnsigned({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-06-01T00:00:00Z' }),
    );
    expect(decide(expired)).toMatchObject({ ok: false, code: 'expired' });
    const expiring = await envelopeOf(
      validUnsigned({ issued_at: '2026-06-05T00:00:00Z', expires_at: '2026-06-05T12:59:59Z' }),
    );
    expect(decide(expiring)).toMatchObject({
      ok: false,
      code: 'expiring',
      reason: expect.stringMatching(/^expires within the SDK's 1-hour window/),
    });
    const justEnough = await envelopeOf(
      validUnsigned({ issued_at: '2026-06-05T00:00:00Z', expires_at: '2026-06-05T13:00:00Z' }),
    );
    expect(decide(justEnough).ok).toBe(true);
    const valid = await envelopeOf(validUnsigned());
    expect(decide(valid, { revoked: true })).toMatchObject({ ok: false, code: 'revoked' });
    const cut = new Date('2026-06-05T11:00:00Z');
    expect(decide(valid, { trustedBefore: cut, storedAt: cut })).toMatchObject({
      ok: false,
      code: 'stored-after-cutoff',
    });
    expect(decide(valid, { trustedBefore: cut, storedAt: new Date('2026-06-05T10:59:59Z') }).ok).toBe(true);
  });

  it('an envelope that is not a readable v0.2 COSE_Sign1 is declined with the upstream reason', () => {
    // AM-VEC-COSE-012: a version 0.1 payload inside a COSE envelope (INCOMPATIBLE_VERSION).
    expect(unreadable(upstreamEnvelope('AM-VEC-COSE-012'))).toMatchObject({ code: 'unsupported-version' });
    // AM-VEC-COSE-010: a duplicate member name in the payload (MISMATCH).
    expect(unreadable(upstreamEnvelope('AM-VEC-COSE-010'))).toMatchObject({
      code: 'unreadable',
      reason: expect.stringMatching(/member name "issuer" appears twice/),
    });
  });

  it('a hybrid Ed25519 + ML-DSA-65 COSE_Sign is declined: unresignable', async () => {
    const genuine = decodeEnvelope(await envelopeOf(validUnsigned()));
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
          [4, Uint8Array.from(Buffer.from(shared.key.key_id, 'hex'))],
        ]),
      ),
      new CborMap(),
      new Uint8Array(64),
    ];
    const hybrid = encodeCbor(
      new CborTag(98, [body, new CborMap(), genuine.payload!, [entry(-19), entry(-49)]]),
    );
    expect(decide(hybrid)).toMatchObject({
      ok: false,
      code: 'unresignable',
      reason: expect.stringMatching(/^a hybrid Ed25519 \+ ML-DSA-65 COSE_Sign/),
    });
  });
});
