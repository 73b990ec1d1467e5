/**
 * Ed25519 verification under the reference SDK's rules, on top of OpenSSL: 64-byte signatures
 * only, the 8 small-order public keys refused, and non-canonical encodings refused (a public key
 * or R whose y is not below p, a zero x with its sign bit set, an S not below the group order).
 */
import type { KeyObject } from 'node:crypto';
import { verify } from 'node:crypto';
import { keyIdOf, publicKeyObject } from './keys';

const SMALL_ORDER_POINTS = new Set([
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
]);

/** The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const GROUP_ORDER_LE = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

/** Why a 32-byte string is not an acceptable Ed25519 public key, or null when it is. */
export function publicKeyProblem(publicKey: Uint8Array): string | null {
  if (publicKey.length !== 32) return `an Ed25519 public key is 32 bytes, got ${publicKey.length}`;
  if (SMALL_ORDER_POINTS.has(Buffer.from(publicKey).toString('hex')))
    return 'the public key is a small-order point';
  if (!isCanonicalPoint(publicKey, 0)) return 'the public key is a non-canonical point encoding';
  return null;
}

/** Why a signature is malformed (before any curve arithmetic), or null when it is well formed. */
export function signatureProblem(signature: Uint8Array): string | null {
  if (signature.length !== 64) return `an Ed25519 signature is 64 bytes, got ${signature.length}`;
  if (!isCanonicalPoint(signature, 0)) return 'the signature R is a non-canonical point encoding';
  if (!scalarBelowOrder(signature, 32))
    return 'the signature S is not below the group order (malleable encoding)';
  return null;
}

function isCanonicalPoint(bytes: Uint8Array, at: number): boolean {
  const top = bytes[at + 31]!;
  // y >= p = 2^255 - 19 only when bits 8..254 are all ones and the low byte is >= 0xed.
  let allOnes = (top & 0x7f) === 0x7f;
  for (let i = 1; allOnes && i < 31; i++) allOnes = bytes[at + i] === 0xff;
  if (allOnes && bytes[at]! >= 0xed) return false;
  // x = 0 (y = 1 or y = p - 1) written with the sign bit set.
  if (top & 0x80) {
    const yIsOne = bytes[at] === 1 && isZero(bytes, at + 1, at + 31) && (top & 0x7f) === 0;
    const yIsPMinusOne =
      bytes[at] === 0xec && allBytes(bytes, at + 1, at + 31, 0xff) && (top & 0x7f) === 0x7f;
    if (yIsOne || yIsPMinusOne) return false;
  }
  return true;
}

function scalarBelowOrder(bytes: Uint8Array, at: number): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = bytes[at + i]!;
    const b = GROUP_ORDER_LE[i]!;
    if (a !== b) return a < b;
  }
  return false;
}

function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  return allBytes(bytes, from, to, 0);
}

function allBytes(bytes: Uint8Array, from: number, to: number, value: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== value) return false;
  return true;
}

/** A trusted key checked once: its OpenSSL handle, or why it cannot be used. */
export type TrustedKey = { ok: true; keyObject: KeyObject } | { ok: false; problem: string };

const trustedKeyCache = new WeakMap<Uint8Array, { actualKeyId: string | null; checked: TrustedKey }>();

/** Validates a trusted public key against its key_id once per key array, then reuses the handle. */
export function trustedKey(keyId: string, publicKey: Uint8Array): TrustedKey {
  let entry = trustedKeyCache.get(publicKey);
  if (entry === undefined) {
    entry = {
      actualKeyId: publicKey.length === 32 ? keyIdOf(publicKey) : null,
      checked: checkTrustedKey(keyId, publicKey),
    };
    trustedKeyCache.set(publicKey, entry);
  }
  if (entry.checked.ok && keyId !== entry.actualKeyId) {
    return { ok: false, problem: `trusted key ${keyId} does not hash to its key_id` };
  }
  return entry.checked;
}

function checkTrustedKey(keyId: string, publicKey: Uint8Array): TrustedKey {
  const problem = publicKeyProblem(publicKey);
  if (problem !== null) return { ok: false, problem: `trusted key ${keyId}: ${problem}` };
  try {
    return { ok: true, keyObject: publicKeyObject(publicKey) };
  } catch {
    return { ok: false, problem: `trusted key ${keyId} is not a point on the curve` };
  }
}

/** Strict verification: false for any malformed key or signature, never an exception. */
export function verifyStrict(
  publicKey: Uint8Array | KeyObject,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signatureProblem(signature) !== null) return false;
  let key: KeyObject;
  if (publicKey instanceof Uint8Array) {
    if (publicKeyProblem(publicKey) !== null) return false;
    try {
      key = publicKeyObject(publicKey);
    } catch {
      return false;
    }
  } else key = publicKey;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
