/** Verify before trust: decideReissue declines every manifest the rotation must not sign, with its reason. */
import { describe, expect, it } from 'vitest';
import {
  decideReissue,
  keyIdOf,
  parseStoredManifest,
  publicKeyFromSeed,
  type RegistryKey,
  type ReissueFacts,
  signManifest,
  softwareSigner,
} from '../../src/manifest/index';
import { type Loose, shared, testPublicKey, testSigner, validUnsigned } from './vectors';

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
const sign = async (m: Loose, signer = testSigner) =>
  (await signManifest(JSON.stringify(m), signer, { signedAt: new Date('2026-06-01T00:00:00Z') })).text;
const decide = (text: string, extra: Partial<ReissueFacts> = {}) =>
  decideReissue(parseStoredManifest(text), facts(extra));

describe('decideReissue', () => {
  it('a valid manifest of the rotated key may be re-issued', async () => {
    expect(decide(await sign(validUnsigned()))).toMatchObject({ ok: true, keyId: shared.key.key_id });
  });

  it('a forged manifest (garbage signature_value, key_id naming the old key) is declined: bad-signature', async () => {
    const m = JSON.parse(await sign(validUnsigned()));
    m.signature.signature_value = Buffer.alloc(64, 7).toString('base64url');
    expect(decide(JSON.stringify(m))).toMatchObject({
      ok: false,
      code: 'bad-signature',
      reason: expect.stringMatching(new RegExp(`^signature does not verify under ${shared.key.key_id}`)),
    });
  });

  it('a manifest changed after signing is declined: bad-signature', async () => {
    const text = (await sign(validUnsigned())).replace('kyc/prod', 'kyc/evil');
    expect(decide(text)).toMatchObject({ ok: false, code: 'bad-signature' });
  });

  it('a key rotor does not know is declined: unknown-key', async () => {
    const stranger = softwareSigner(new Uint8Array(32).fill(9));
    expect(decide(await sign(validUnsigned(), stranger), { fromKeyId: undefined })).toMatchObject({
      ok: false,
      code: 'unknown-key',
      reason: `unknown key ${stranger.keyId}: not in rotor's key registry`,
    });
  });

  it("another identity's key is declined: foreign-key", async () => {
    const text = await sign(validUnsigned(), otherSigner);
    expect(decide(text, { fromKeyId: undefined })).toMatchObject({ ok: false, code: 'foreign-key' });
    expect(decide(text)).toMatchObject({ ok: false, code: 'foreign-key' });
  });

  it('a schema-invalid manifest is declined with the failing field, even with a good signature', async () => {
    const m = validUnsigned();
    m.intent.score = 0.95;
    expect(decide(await sign(m))).toMatchObject({
      ok: false,
      code: 'schema',
      reason: expect.stringMatching(/^schema: intent\.score: /),
    });
  });

  it('an expired manifest still marked active is declined: expired', async () => {
    const text = await sign(
      validUnsigned({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-06-01T00:00:00Z' }),
    );
    expect(decide(text)).toEqual({ ok: false, code: 'expired', reason: 'expired at 2026-06-01T00:00:00Z' });
  });

  it("a manifest with under an hour left is declined: the twin would fail the SDK's window", async () => {
    const text = await sign(
      validUnsigned({ issued_at: '2026-06-05T00:00:00Z', expires_at: '2026-06-05T12:59:59Z' }),
    );
    expect(decide(text)).toMatchObject({
      ok: false,
      code: 'expiring',
      reason: expect.stringMatching(/^expires within the SDK's 1-hour window/),
    });
    // One hour left to the second is enough: the twin's window is exactly the minimum.
    const justEnough = await sign(
      validUnsigned({ issued_at: '2026-06-05T00:00:00Z', expires_at: '2026-06-05T13:00:00Z' }),
    );
    expect(decide(justEnough).ok).toBe(true);
  });

  it('a revoked manifest is declined: revoked', async () => {
    expect(decide(await sign(validUnsigned()), { revoked: true })).toMatchObject({
      ok: false,
      code: 'revoked',
    });
  });

  it('compromise: a manifest stored at or after the trusted cut-off is declined', async () => {
    const text = await sign(validUnsigned());
    const cut = new Date('2026-06-05T11:00:00Z');
    expect(decide(text, { trustedBefore: cut, storedAt: new Date('2026-06-05T11:00:00Z') })).toMatchObject({
      ok: false,
      code: 'stored-after-cutoff',
    });
    expect(decide(text, { trustedBefore: cut }).ok).toBe(false);
    expect(decide(text, { trustedBefore: cut, storedAt: new Date('2026-06-05T10:59:59Z') }).ok).toBe(true);
  });

  it('a duplicate member name anywhere is declined (I-JSON)', async () => {
    const text = await sign(validUnsigned());
    const dup = text.replace('"statement":', '"statement":"x","statement":');
    expect(decide(dup)).toMatchObject({
      ok: false,
      code: 'duplicate-member',
      reason: expect.stringMatching(/intent\.statement/),
    });
  });

  it('an unsigned manifest is declined: unsigned', () => {
    expect(decide(JSON.stringify(validUnsigned()))).toMatchObject({ ok: false, code: 'unsigned' });
  });

  it('the registry key must be the one signed with: a key_id whose registered key differs does not verify', async () => {
    const wrong = new Map(registry);
    wrong.set(shared.key.key_id, {
      keyId: shared.key.key_id,
      identity: 'payments',
      publicKey: publicKeyFromSeed(otherSeed),
    });
    const text = await sign(validUnsigned());
    expect(
      decideReissue(parseStoredManifest(text), { ...facts(), lookupKey: (k) => wrong.get(k) }),
    ).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
    expect(keyIdOf(publicKeyFromSeed(otherSeed))).not.toBe(shared.key.key_id);
  });
});
