/**
 * Ed25519 keys as agent-manifest writes them: key_id is the lowercase hex SHA-256 of the raw
 * 32-byte public key; keys, seeds and signatures travel as base64url without padding.
 * Hot paths use node:crypto (OpenSSL, the engine the reference SDK uses).
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import type { Signer } from './signer';

export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Strict base64url: no padding, no `+` or `/`, no stray characters, canonical trailing bits. */
export function b64urlDecode(text: string, what = 'value'): Uint8Array {
  if (!B64URL.test(text)) {
    const bad = /[+/]/.test(text)
      ? "'+' or '/' (standard base64, not base64url)"
      : 'characters outside base64url';
    throw new KeyFormatError(
      `${what} is not base64url: it contains ${text.includes('=') ? "'=' padding" : bad}`,
    );
  }
  if (text.length % 4 === 1)
    throw new KeyFormatError(`${what} is not base64url: impossible length ${text.length}`);
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) {
    throw new KeyFormatError(`${what} is not canonical base64url (non-zero trailing bits)`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function b64urlEncode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function keyIdOf(publicKey: Uint8Array): string {
  if (publicKey.length !== 32)
    throw new KeyFormatError(`an Ed25519 public key is 32 bytes, got ${publicKey.length}`);
  return createHash('sha256').update(publicKey).digest('hex');
}

// DER prefixes that wrap a raw Ed25519 seed (PKCS#8) or public key (SPKI) for OpenSSL.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new KeyFormatError(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32)
    throw new KeyFormatError(`an Ed25519 public key is 32 bytes, got ${publicKey.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyFromSeed(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

export function ed25519Sign(key: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, key));
}

/** Raw OpenSSL verification; the SDK's extra rules (small-order keys etc.) live in the verifier. */
export function ed25519Verify(
  publicKey: Uint8Array | KeyObject,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== 64) return false;
  const key = publicKey instanceof Uint8Array ? publicKeyObject(publicKey) : publicKey;
  return verify(null, message, key, signature);
}

/** A signer over a seed held in this process's memory (software custody, tests). */
export function softwareSigner(seed: Uint8Array): Signer {
  const key = privateKeyFromSeed(seed);
  const publicKey = publicKeyFromSeed(seed);
  return {
    keyId: keyIdOf(publicKey),
    keyType: 'software',
    publicKey,
    threadKey: key,
    async sign(message: Uint8Array) {
      return ed25519Sign(key, message);
    },
  };
}
