/**
 * Manifest v0.2 (COSE_Sign1): every upstream COSE vector gives its upstream verdict, the pinned
 * encodings are reproduced byte for byte, and rotor's envelopes equal the reference SDK's for every
 * manifest in reference-sdk-cose-shared.json.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ed from '@noble/ed25519';
import { describe, expect, it } from 'vitest';
import {
  b64urlDecode,
  CborMap,
  CborTag,
  cosePayload,
  decodeCbor,
  decodeEnvelope,
  encodeCbor,
  encodeSign1,
  examineEnvelope,
  parseManifestForCose,
  protectedHeaderBytes,
  signCoseManifest,
  sigStructure1,
  softwareSigner,
  verifyCoseEnvelope,
  verifyManifest,
} from '../../src/manifest/index';

ed.hashes.sha512 = (m: Uint8Array) => new Uint8Array(createHash('sha512').update(m).digest());

const VECTORS = join(import.meta.dirname, '../fixtures/vectors');
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface CoseVector {
  id: string;
  description: string;
  envelope_hex?: string;
  manifest?: Record<string, unknown>;
  context: { trusted_keys: Record<string, string>; trusted_key_issuers?: Record<string, string[]> };
  expected: {
    result: string;
    signature_verified: boolean;
    cose?: {
      tag: number;
      protected_hex: string;
      unprotected_hex: string;
      payload_hex: string;
      signature_hex: string;
      manifest_hash: string;
    };
  };
}

const coseVectors: CoseVector[] = Array.from({ length: 15 }, (_, i) =>
  JSON.parse(
    readFileSync(
      join(VECTORS, 'agent-manifest-upstream', `AM-VEC-COSE-${String(i + 1).padStart(3, '0')}.json`),
      'utf8',
    ),
  ),
);

interface SdkCoseShared {
  key: { seed_b64url: string; public_b64url: string; key_id: string };
  kid_hex: string;
  vectors: {
    manifest_json: string;
    payload_hex: string;
    envelope_hex: string;
    manifest_hash: string;
    sdk_result: string;
  }[];
}
const sdk: SdkCoseShared = JSON.parse(readFileSync(join(VECTORS, 'reference-sdk-cose-shared.json'), 'utf8'));
const sdkSigner = softwareSigner(b64urlDecode(sdk.key.seed_b64url));
const now = new Date('2026-11-30T12:00:00Z');

function contextOf(v: CoseVector) {
  const trustedKeys = new Map(Object.entries(v.context.trusted_keys).map(([k, pk]) => [k, b64urlDecode(pk)]));
  const issuers = v.context.trusted_key_issuers;
  return {
    trustedKeys,
    now,
    ...(issuers ? { trustedKeyIssuers: new Map(Object.entries(issuers)) } : {}),
  };
}

describe('upstream COSE vectors (AM-VEC-COSE-001..015)', () => {
  for (const v of coseVectors) {
    it(`${v.id}: ${v.expected.result} (${v.description.slice(0, 70)})`, () => {
      if (v.envelope_hex === undefined) {
        // AM-VEC-COSE-014: a v0.2 JSON document with a v0.1 signature block.
        const verdict = verifyManifest(JSON.stringify(v.manifest), contextOf(v));
        expect(v.expected.result).toBe('MISMATCH');
        expect(verdict.result).toBe('INVALID');
        expect(verdict.reason).toMatch(/COSE_Sign1/);
        return;
      }
      const verdict = verifyCoseEnvelope(hex(v.envelope_hex), contextOf(v));
      expect({ upstream: verdict.upstream, signatureVerified: verdict.signatureVerified }).toEqual({
        upstream: v.expected.result,
        signatureVerified: v.expected.signature_verified,
      });
      expect(verdict.result).toBe(v.expected.result === 'VALID' ? 'VALID' : 'INVALID');
    });
  }

  it('each refusal names its own defect', () => {
    const reasons = Object.fromEntries(
      coseVectors
        .filter((v) => v.envelope_hex !== undefined)
        .map((v) => [v.id, verifyCoseEnvelope(hex(v.envelope_hex!), contextOf(v)).reason]),
    );
    expect(reasons['AM-VEC-COSE-002']).toMatch(/does not verify/);
    expect(reasons['AM-VEC-COSE-003']).toMatch(/alg \(1\) in an unprotected header/);
    expect(reasons['AM-VEC-COSE-004']).toMatch(/typ "application\/vnd\.agent-manifest\+cose"/);
    expect(reasons['AM-VEC-COSE-006']).toMatch(/untagged/);
    expect(reasons['AM-VEC-COSE-007']).toMatch(/trailing byte/);
    expect(reasons['AM-VEC-COSE-008']).toMatch(/detached/);
    expect(reasons['AM-VEC-COSE-009']).toMatch(/not authorized for issuer/);
    expect(reasons['AM-VEC-COSE-010']).toMatch(/"issuer" appears twice/);
    expect(reasons['AM-VEC-COSE-011']).toMatch(/NaN/);
    expect(reasons['AM-VEC-COSE-012']).toMatch(/payload version "0\.1"/);
    expect(reasons['AM-VEC-COSE-013']).toMatch(/nesting deeper than/);
    expect(reasons['AM-VEC-COSE-015']).toMatch(/Infinity/);
  });

  it('AM-VEC-COSE-001 decodes to the pinned parts and re-encodes to the same bytes', () => {
    const v = coseVectors[0]!;
    const pinned = v.expected.cose!;
    const env = decodeEnvelope(hex(v.envelope_hex!));
    expect(env.tag).toBe(pinned.tag);
    expect(toHex(env.protectedBytes)).toBe(pinned.protected_hex);
    expect(toHex(encodeCbor(env.unprotected))).toBe(pinned.unprotected_hex);
    expect(toHex(env.payload!)).toBe(pinned.payload_hex);
    expect(toHex(env.signature!)).toBe(pinned.signature_hex);
    const kid = hex(Object.keys(v.context.trusted_keys)[0]!);
    // The protected header rotor builds for this kid is the pinned one, byte for byte.
    expect(toHex(protectedHeaderBytes(kid))).toBe(pinned.protected_hex);
    expect(
      toHex(
        encodeSign1({ protectedBytes: env.protectedBytes, payload: env.payload!, signature: env.signature! }),
      ),
    ).toBe(v.envelope_hex);
    // The Sig_structure is what the signature covers: an independent Ed25519 agrees.
    const pk = b64urlDecode(Object.values(v.context.trusted_keys)[0]!);
    expect(ed.verify(env.signature!, sigStructure1(env.protectedBytes, env.payload!), pk)).toBe(true);
  });

  it('refuses with the verdicts the spec names where no vector pins one', () => {
    const v = coseVectors[0]!;
    const env = decodeEnvelope(hex(v.envelope_hex!));
    const ctx = contextOf(v);
    // Unknown key: UNVERIFIABLE, never VALID.
    expect(verifyCoseEnvelope(hex(v.envelope_hex!), { trustedKeys: new Map(), now }).upstream).toBe(
      'UNVERIFIABLE',
    );
    // A crit naming a label rotor does not understand.
    const prot = decodeCbor(env.protectedBytes) as CborMap;
    const withCrit = CborMap.of([...prot.entries, [2, [99]]]);
    const critEnv = encodeSign1({
      protectedBytes: encodeCbor(withCrit),
      payload: env.payload!,
      signature: env.signature!,
    });
    const r = verifyCoseEnvelope(critEnv, ctx);
    expect(r.upstream).toBe('MISMATCH');
    expect(r.reason).toMatch(/crit \(2\).*label 99/);
    // Wrong tag.
    const wrongTag = encodeCbor(
      new CborTag(17, [env.protectedBytes, new CborMap(), env.payload!, env.signature!]),
    );
    expect(verifyCoseEnvelope(wrongTag, ctx).reason).toMatch(/CBOR tag 17/);
    // Expired and revoked are rotor's verdicts on a well-formed envelope.
    expect(
      verifyCoseEnvelope(hex(v.envelope_hex!), { ...ctx, now: new Date('2100-01-01T00:00:00Z') }).result,
    ).toBe('EXPIRED');
    const id = examineEnvelope(hex(v.envelope_hex!)).manifestId;
    expect(verifyCoseEnvelope(hex(v.envelope_hex!), { ...ctx, revokedIds: new Set([id]) }).result).toBe(
      'REVOKED',
    );
  });

  it('reads a hybrid COSE_Sign and reports it unverifiable, naming ML-DSA-65', () => {
    const v = coseVectors[0]!;
    const env = decodeEnvelope(hex(v.envelope_hex!));
    const body = encodeCbor(
      CborMap.of([
        [3, 'application/agent-manifest+json'],
        [16, 'application/agent-manifest+cose'],
      ]),
    );
    const kid = hex(Object.keys(v.context.trusted_keys)[0]!);
    const signer = (alg: number) => [
      encodeCbor(
        CborMap.of([
          [1, alg],
          [4, kid],
        ]),
      ),
      new CborMap(),
      new Uint8Array(64),
    ];
    const hybrid = encodeCbor(
      new CborTag(98, [body, new CborMap(), env.payload!, [signer(-19), signer(-49)]]),
    );
    const r = verifyCoseEnvelope(hybrid, contextOf(v));
    expect(r.upstream).toBe('UNVERIFIABLE');
    expect(r.reason).toMatch(/hybrid COSE_Sign \(Ed25519 \+ -49\).*ML-DSA-65/);
    expect(r.keyId).toBe(toHex(kid));
    // One algorithm twice (-8 and -19) is not a hybrid (§3).
    const twice = encodeCbor(new CborTag(98, [body, new CborMap(), env.payload!, [signer(-19), signer(-8)]]));
    expect(verifyCoseEnvelope(twice, contextOf(v)).reason).toMatch(/one algorithm signed twice/);
  });
});

describe('rotor envelopes equal the reference SDK bytes (reference-sdk-cose-shared.json)', () => {
  it('the signer is the shared key; the kid is its key_id as bytes', () => {
    expect(sdkSigner.keyId).toBe(sdk.key.key_id);
    expect(sdk.kid_hex).toBe(sdk.key.key_id);
  });

  sdk.vectors.forEach((v, i) => {
    it(`vector ${i}: payload and envelope byte for byte, VALID under rotor's verifier`, async () => {
      const manifest = parseManifestForCose(v.manifest_json);
      expect(toHex(cosePayload(manifest).payload)).toBe(v.payload_hex);
      const signed = await signCoseManifest(v.manifest_json, sdkSigner);
      expect(toHex(signed.envelope)).toBe(v.envelope_hex);
      const verdict = verifyCoseEnvelope(signed.envelope, {
        trustedKeys: new Map([[sdk.key.key_id, b64urlDecode(sdk.key.public_b64url)]]),
        now,
      });
      expect(verdict.upstream).toBe(v.sdk_result);
    });
  });

  it('leaves out, and reports, what attaches after signing', async () => {
    const v = sdk.vectors.find((x) => x.manifest_json.includes('transparency_log_entry'))!;
    const signed = await signCoseManifest(v.manifest_json, sdkSigner);
    expect(signed.left).toEqual(expect.arrayContaining(['attestation', 'transparency_log_entry']));
    expect(Buffer.from(signed.payload).toString('utf8')).not.toMatch(
      /attestation|transparency_log_entry|approvals/,
    );
  });

  it('refuses to sign a 0.1 document, a post-quantum profile or a duplicate member as COSE', async () => {
    const base = JSON.parse(sdk.vectors[0]!.manifest_json);
    await expect(signCoseManifest(JSON.stringify({ ...base, version: '0.1' }), sdkSigner)).rejects.toThrow(
      /version is "0\.1".*INCOMPATIBLE_VERSION/,
    );
    await expect(
      signCoseManifest(JSON.stringify({ ...base, crypto_profile: 'post-quantum' }), sdkSigner),
    ).rejects.toThrow(/ML-DSA-65/);
    const dup = sdk.vectors[0]!.manifest_json.replace('"issuer":', '"issuer": "x", "issuer":');
    await expect(signCoseManifest(dup, sdkSigner)).rejects.toThrow(/"issuer" appears twice/);
  });
});

describe('CBOR subset', () => {
  it('encodes shortest forms and orders map keys length-first', () => {
    expect(toHex(encodeCbor(23))).toBe('17');
    expect(toHex(encodeCbor(24))).toBe('1818');
    expect(toHex(encodeCbor(-19))).toBe('32');
    expect(toHex(encodeCbor(394))).toBe('19018a');
    expect(toHex(encodeCbor(2 ** 32))).toBe('1b0000000100000000');
    expect(toHex(encodeCbor(-1n - 2n ** 63n))).toBe('3b8000000000000000');
    expect(
      toHex(
        encodeCbor(
          CborMap.of([
            ['b', 1],
            [24, 2],
            [-1, 3],
            ['a', 4],
          ]),
        ),
      ),
    ).toBe('a42003181802616104616201');
  });

  it('writes each head width, long strings and large maps exactly, and refuses what it cannot encode', () => {
    // Each argument width at its edges, for integers, negatives and lengths.
    expect(toHex(encodeCbor(255))).toBe('18ff');
    expect(toHex(encodeCbor(65535))).toBe('19ffff');
    expect(toHex(encodeCbor(65536))).toBe('1a00010000');
    expect(toHex(encodeCbor(2 ** 32 - 1))).toBe('1affffffff');
    expect(toHex(encodeCbor(2 ** 53 - 1))).toBe('1b001fffffffffffff');
    expect(toHex(encodeCbor(2n ** 64n - 1n))).toBe('1bffffffffffffffff');
    expect(toHex(encodeCbor(-257))).toBe('390100');
    // A text longer than the writer's first buffer, with non-ASCII text and a lone surrogate
    // (written as U+FFFD, as TextEncoder writes it).
    const long = `${'é'.repeat(200)}\uD800${'x'.repeat(70_000)}`;
    const utf8 = new TextEncoder().encode(long);
    const encoded = encodeCbor(long);
    expect(toHex(encoded.subarray(0, 5))).toBe(`7a${utf8.length.toString(16).padStart(8, '0')}`);
    expect(Buffer.from(encoded.subarray(5)).equals(Buffer.from(utf8))).toBe(true);
    // A map whose values are themselves maps: every key sorted at every level, each value once.
    const inner = CborMap.of([
      ['zz', hex('00'.repeat(300))],
      [1, 'one'],
    ]);
    const outer = encodeCbor(
      CborMap.of([
        ['b', inner],
        [-1, [inner]],
      ]),
    );
    const innerHex = `a2016${'3'}6f6e65627a7a59012c${'00'.repeat(300)}`;
    expect(toHex(outer)).toBe(`a2208${'1'}${innerHex}6162${innerHex}`);
    expect(() => encodeCbor(1.5)).toThrow(/not an integer/);
    expect(() => encodeCbor(2n ** 64n)).toThrow(/fit in 64 bits/);
    expect(() => encodeCbor(new CborTag(-1, 0))).toThrow(/cannot be negative/);
    expect(() =>
      encodeCbor(
        CborMap.of([
          ['a', 1],
          ['a', 2],
        ]),
      ),
    ).toThrow(/same key twice/);
  });

  it('refuses what a strict decoder must refuse, naming the byte', () => {
    expect(() => decodeCbor(hex('a201010102'))).toThrow(/map key 1 appears twice \(byte 3\)/);
    expect(() => decodeCbor(hex('9f01ff'))).toThrow(/indefinite-length/);
    expect(() => decodeCbor(hex('5a7fffffff00'))).toThrow(/declares 2147483647/);
    expect(() => decodeCbor(hex('0101'))).toThrow(/1 trailing byte/);
    expect(() => decodeCbor(hex('62c328'))).toThrow(/not valid UTF-8/);
    expect(() => decodeCbor(hex('1c'))).toThrow(/reserved additional information 28/);
    expect(() => decodeCbor(hex(`${'81'.repeat(40)}00`))).toThrow(/nested deeper than 32/);
  });

  it('round-trips what it encodes', () => {
    const value = [1, -1, 'text', hex('00ff'), true, null, CborMap.of([[1, [2, 3]]]), new CborTag(18, 0)];
    expect(toHex(encodeCbor(decodeCbor(encodeCbor(value))))).toBe(toHex(encodeCbor(value)));
  });
});
