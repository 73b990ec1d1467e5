/** Property tests: canonical form, sign/verify and re-issue over arbitrary manifests. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  checkManifestSignature,
  isJsonObject,
  JsonNumber,
  type JsonValue,
  parseJson,
  reissueManifest,
  SIGNED_FIELDS,
  signManifest,
  stringifyJson,
} from '../../src/manifest/index';
import { SIGNED_AT, testSigner, testTrustedKeys } from './vectors';

const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const key = fc.oneof(text, fc.constantFrom('a', 'é', 'e\u0301', '😀', '\ufb01', 'Z', '1', '__proto__'));
const number = fc.oneof(
  fc.integer().map((n) => new JsonNumber(String(n))),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => new JsonNumber(n.toString())),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JsonNumber.of(d === 0 ? 0.5 : d)),
  fc.constantFrom('1.0', '1e16', '1E2', '-0.0', '2.5e-05', '1e-7').map((t) => new JsonNumber(t)),
);
const { value: jsonValue } = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    text,
    number,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
  ),
}));

/** A manifest: the fixed members a verifier needs plus arbitrary signed and unsigned members. */
const manifest = fc
  .record({
    agent: text,
    signed: fc.dictionary(
      fc.constantFrom(
        ...SIGNED_FIELDS.filter(
          (f) => !['manifest_id', 'version', 'expires_at', 'crypto_profile'].includes(f),
        ),
      ),
      jsonValue,
      {
        maxKeys: 5,
      },
    ),
    other: fc.dictionary(fc.constantFrom('attestation', 'transparency_log_entry', 'x-extra'), jsonValue, {
      maxKeys: 2,
    }),
  })
  .map(({ signed, other }) => {
    const m = new Map<string, JsonValue>([
      ['manifest_id', '0190b6e0-0000-7000-8000-000000000000'],
      ['version', '0.1'],
      ['expires_at', '2099-01-01T00:00:00Z'],
    ]);
    for (const [k, v] of Object.entries(signed)) m.set(k, v);
    for (const [k, v] of Object.entries(other)) m.set(k, v);
    return stringifyJson(m);
  });

/**
 * The SDK sorts keys before NFC-normalizing them, so a key that NFC changes can land out of order
 * (or collide) in canonical output, and re-reading that output sorts it differently.
 */
function hasNonNfcKey(v: JsonValue): boolean {
  if (Array.isArray(v)) return v.some(hasNonNfcKey);
  if (!isJsonObject(v)) return false;
  for (const [k, child] of v) {
    if (child === null) continue;
    if (k.normalize('NFC') !== k || hasNonNfcKey(child)) return true;
  }
  return false;
}

/**
 * The signature alone: these properties are about canonical bytes and signing over arbitrary
 * JSON, which is not schema-valid (the verdict's schema rules have their own tests).
 */
const signatureVerifies = (text: string): boolean => {
  const root = parseJson(text);
  return isJsonObject(root) && checkManifestSignature(root, testTrustedKeys()).ok;
};

describe('properties', () => {
  it('canonical form is idempotent on its own output (for NFC keys: see the key-order pins)', () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        fc.pre(!hasNonNfcKey(v));
        const once = canonicalize(v);
        expect(canonicalize(parseJson(once))).toBe(once);
      }),
      { numRuns: 300 },
    );
  });

  it('parse -> stringify -> parse gives the same canonical form (lossless)', () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        expect(canonicalize(parseJson(stringifyJson(v)))).toBe(canonicalize(v));
      }),
      { numRuns: 300 },
    );
  });

  it('sign -> verify round-trips for arbitrary manifests', async () => {
    await fc.assert(
      fc.asyncProperty(manifest, async (m) => {
        const { text: signed } = await signManifest(m, testSigner, { signedAt: SIGNED_AT });
        expect(signatureVerifies(signed)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('any change to a signed member fails verification', async () => {
    await fc.assert(
      fc.asyncProperty(
        manifest,
        fc.constantFrom(...SIGNED_FIELDS),
        jsonValue,
        async (m, field, replacement) => {
          const { text: signed } = await signManifest(m, testSigner, { signedAt: SIGNED_AT });
          const root = parseJson(signed);
          if (!isJsonObject(root)) throw new Error('object expected');
          const before = canonicalize(new Map([['v', root.get(field) ?? null]]));
          root.set(field, replacement);
          const after = canonicalize(new Map([['v', replacement]]));
          // hitl_record approvals are outside the pre-image; otherwise a canonical change must break the signature.
          fc.pre(
            before !== after &&
              field !== 'hitl_record' &&
              field !== 'version' &&
              field !== 'expires_at' &&
              field !== 'crypto_profile' &&
              field !== 'manifest_id',
          );
          expect(signatureVerifies(stringifyJson(root))).toBe(false);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('re-issue changes only what it must, and the twin verifies', async () => {
    await fc.assert(
      fc.asyncProperty(manifest, async (m) => {
        const r = await reissueManifest(m, testSigner, { now: SIGNED_AT });
        const before = parseJson(m);
        const after = parseJson(r.text);
        if (!isJsonObject(before) || !isJsonObject(after)) throw new Error('object expected');
        for (const k of [
          'manifest_id',
          'previous_manifest_id',
          'issued_at',
          'attestation',
          'signature',
          'transparency_log_entry',
          'prior_transparency_log_entry',
        ]) {
          before.delete(k);
          after.delete(k);
        }
        expect(canonicalize(after)).toBe(canonicalize(before));
        expect(r.attestationDropped).toBe(m.includes('"attestation":'));
        expect(signatureVerifies(r.text)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});
