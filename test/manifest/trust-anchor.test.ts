import { describe, expect, it } from 'vitest';
import {
  buildTrustAnchor,
  ManifestError,
  publicKeyFromSeed,
  trustedKeysFromAnchor,
  validateTrustAnchor,
} from '../../src/manifest/index';
import type { Loose } from './vectors';
import { shared, testPublicKey } from './vectors';

const newSeed = new Uint8Array(32).fill(5);
const newKey = publicKeyFromSeed(newSeed);
const { keyIdOf } = await import('../../src/manifest/index');
const newKeyId = keyIdOf(newKey);

const anchor = () =>
  buildTrustAnchor({
    activeKeyId: newKeyId,
    version: 2,
    keys: [
      {
        keyId: shared.key.key_id,
        publicKey: testPublicKey,
        validFrom: '2026-01-01T00:00:00Z',
        status: 'retiring',
        validUntil: new Date('2026-06-06T10:00:00Z'),
      },
      { keyId: newKeyId, publicKey: newKey, validFrom: new Date('2026-06-05T10:00:00.900Z') },
    ],
  });

describe('trust anchor', () => {
  it('writes the runbook shape with sha256:-prefixed key ids', () => {
    expect(anchor()).toEqual({
      version: 2,
      active_key_id: `sha256:${newKeyId}`,
      keys: [
        {
          key_id: `sha256:${shared.key.key_id}`,
          algorithm: 'Ed25519',
          public_key: shared.key.public_b64url,
          valid_from: '2026-01-01T00:00:00Z',
          status: 'retiring',
          valid_until: '2026-06-06T10:00:00Z',
        },
        {
          key_id: `sha256:${newKeyId}`,
          algorithm: 'Ed25519',
          public_key: expect.any(String),
          valid_from: '2026-06-05T10:00:00Z',
        },
      ],
    });
  });

  it('gives verifiers bare-hex key ids, honouring the validity window when given a clock', () => {
    expect([...trustedKeysFromAnchor(anchor()).keys()]).toEqual([shared.key.key_id, newKeyId]);
    expect([...trustedKeysFromAnchor(anchor(), { now: new Date('2026-06-07T00:00:00Z') }).keys()]).toEqual([
      newKeyId,
    ]);
    expect([...trustedKeysFromAnchor(anchor(), { now: new Date('2026-06-01T00:00:00Z') }).keys()]).toEqual([
      shared.key.key_id,
    ]);
  });

  it('accepts the runbook example shape (no version, no status)', () => {
    const doc = JSON.parse(
      JSON.stringify({ active_key_id: `sha256:${shared.key.key_id}`, keys: [anchor().keys[0]] }),
    );
    delete doc.keys[0].status;
    delete doc.keys[0].valid_until;
    expect(validateTrustAnchor(doc).keys).toHaveLength(1);
  });

  it.each([
    ['bare active key id', (d: Loose) => (d.active_key_id = newKeyId), /field active_key_id/],
    [
      'active key not listed',
      (d: Loose) => (d.active_key_id = `sha256:${'0'.repeat(64)}`),
      /is not among keys/,
    ],
    [
      'key id not matching the key',
      (d: Loose) => (d.keys[1].key_id = `sha256:${'1'.repeat(64)}`),
      /keys\[1\]\.key_id/,
    ],
    [
      'standard base64 public key',
      (d: Loose) => (d.keys[0].public_key = 'A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg'),
      /keys\[0\]\.public_key.*'\+' or '\/'/,
    ],
    [
      'small-order public key',
      (d: Loose) => (d.keys[0].public_key = Buffer.alloc(32).toString('base64url')),
      /small-order/,
    ],
    ['wrong algorithm', (d: Loose) => (d.keys[0].algorithm = 'ML-DSA-65'), /keys\[0\]\.algorithm/],
    ['bad valid_from', (d: Loose) => (d.keys[0].valid_from = 'soon'), /keys\[0\]\.valid_from/],
    ['duplicate key', (d: Loose) => (d.keys[1] = d.keys[0]), /listed twice/],
    ['empty keys', (d: Loose) => (d.keys = []), /field keys/],
    ['negative version', (d: Loose) => (d.version = -1), /field version/],
  ])('refuses %s, naming the field', (_name, fn, message) => {
    const doc = JSON.parse(JSON.stringify(anchor()));
    fn(doc);
    expect(() => validateTrustAnchor(doc)).toThrow(ManifestError);
    expect(() => validateTrustAnchor(doc)).toThrow(message);
  });

  it('buildTrustAnchor refuses a key id that is not the hash of the key', () => {
    expect(() =>
      buildTrustAnchor({
        activeKeyId: newKeyId,
        keys: [{ keyId: shared.key.key_id, publicKey: newKey, validFrom: '2026-01-01T00:00:00Z' }],
      }),
    ).toThrow(/is not the SHA-256 of this public key/);
  });
});
