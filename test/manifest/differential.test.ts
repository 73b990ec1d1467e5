/**
 * Differential: node:crypto (OpenSSL) against @noble/ed25519 on the same inputs, malformed keys
 * and signatures included. rotor's strict verifier must agree with noble's RFC 8032 mode
 * (zip215: false) plus the SDK's small-order key refusal.
 */
import { createHash, sign as opensslSign } from 'node:crypto';
import * as noble from '@noble/ed25519';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseJson,
  privateKeyFromSeed,
  publicKeyFromSeed,
  publicKeyProblem,
  signingPreImage,
  verifyStrict,
} from '../../src/manifest/index';
import { shared } from './vectors';

noble.hashes.sha512 = (m: Uint8Array) => new Uint8Array(createHash('sha512').update(m).digest());

const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
].map((h) => Buffer.from(h, 'hex'));

function nobleStrictVerify(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64 || pk.length !== 32) return false;
  if (SMALL_ORDER.some((p) => p.equals(pk))) return false;
  try {
    return noble.verify(sig, msg, pk, { zip215: false });
  } catch {
    return false;
  }
}

const seed = fc.uint8Array({ minLength: 32, maxLength: 32 });
const message = fc.uint8Array({ maxLength: 200 });

describe('node:crypto and @noble/ed25519 agree', () => {
  it('on public keys and signatures (Ed25519 is deterministic)', () => {
    fc.assert(
      fc.property(seed, message, (s, msg) => {
        expect(Buffer.from(publicKeyFromSeed(s))).toEqual(Buffer.from(noble.getPublicKey(s)));
        const ours = new Uint8Array(opensslSign(null, msg, privateKeyFromSeed(s)));
        expect(Buffer.from(ours)).toEqual(Buffer.from(noble.sign(msg, s)));
      }),
      { numRuns: 100 },
    );
  });

  it('on the vector pre-images and the SDK signatures', () => {
    const seedBytes = Buffer.from(shared.key.seed_b64url, 'base64url');
    for (const m of shared.manifests) {
      const pre = signingPreImage(parseJson(m.unsigned_json));
      expect(Buffer.from(noble.sign(pre, seedBytes)).toString('base64url')).toBe(m.signature.signature_value);
    }
  });

  it('on verdicts for valid, tampered and malformed signatures', () => {
    const mutation = fc.oneof(
      fc.constant({ kind: 'none' as const }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(63), bit: fc.nat(7) }),
      fc.record({ kind: fc.constant('truncate' as const), to: fc.nat(63) }),
      fc.constant({ kind: 'S+L' as const }),
      fc.constant({ kind: 'max S' as const }),
    );
    fc.assert(
      fc.property(seed, message, mutation, (s, msg, mut) => {
        const pk = publicKeyFromSeed(s);
        let sig: Uint8Array = new Uint8Array(opensslSign(null, msg, privateKeyFromSeed(s)));
        if (mut.kind === 'flip') sig[mut.at]! ^= 1 << mut.bit;
        if (mut.kind === 'truncate') sig = sig.slice(0, mut.to);
        if (mut.kind === 'S+L') sig = addGroupOrderToS(sig);
        if (mut.kind === 'max S') sig.fill(0xff, 32);
        const ours = verifyStrict(pk, msg, sig);
        expect(ours).toBe(nobleStrictVerify(pk, msg, sig));
        if (mut.kind === 'none') expect(ours).toBe(true);
        if (mut.kind === 'S+L') expect(ours).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('on verdicts for malformed and hostile public keys', () => {
    const msg = new TextEncoder().encode('m');
    const candidates: Uint8Array[] = [
      ...SMALL_ORDER,
      Buffer.from('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'), // y = p
      Buffer.from('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'), // y = p + 1
      Buffer.from('0100000000000000000000000000000000000000000000000000000000000080', 'hex'), // x = 0, sign set
      Buffer.from('02'.padEnd(64, '0'), 'hex'), // likely not on the curve
      new Uint8Array(31),
    ];
    fc.assert(
      fc.property(seed, fc.constantFrom(...candidates), (s, pk) => {
        const sig = new Uint8Array(opensslSign(null, msg, privateKeyFromSeed(s)));
        expect(verifyStrict(pk, msg, sig)).toBe(nobleStrictVerify(pk, msg, sig));
        expect(verifyStrict(pk, msg, sig)).toBe(false);
      }),
      { numRuns: 50 },
    );
    for (const pk of SMALL_ORDER) expect(publicKeyProblem(pk)).toMatch(/small-order/);
  });

  it('on arbitrary 32-byte keys and 64-byte signatures (almost all invalid)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        message,
        (pk, sig, msg) => {
          expect(verifyStrict(pk, msg, sig)).toBe(nobleStrictVerify(pk, msg, sig));
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** S + L: the same signature in a non-canonical (malleable) encoding, refused by the SDK's rules. */
function addGroupOrderToS(sig: Uint8Array): Uint8Array {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += L;
  const out = sig.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}
