/**
 * Signed anchors (issue 12): rotor's JWS JSON General Serialization checked by an independent
 * JOSE implementation (`jose`), and every refusal of `verifySignedAnchor`.
 */
import { generalVerify, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  b64urlEncode,
  keyIdOf,
  type RootSet,
  type SignedAnchorPayload,
  type Signer,
  signAnchorJws,
  softwareSigner,
  verifySignedAnchor,
} from '../../src/manifest';

const signer = (n: number) => softwareSigner(new Uint8Array(32).fill(n));
const rootA = signer(31);
const rootB = signer(32);
const rootC = signer(33);
const newRoot = signer(34);
const attacker = signer(35);
const manifestKey = signer(36);
const outgoingKey = signer(37);

const NOW = new Date('2026-11-30T12:00:00Z');

function rootSet(keys: Signer[], threshold: number): RootSet {
  return { threshold, keys: keys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) };
}

function anchorKey(s: Signer, status = 'active') {
  return {
    key_id: `sha256:${s.keyId}`,
    algorithm: 'Ed25519' as const,
    public_key: b64urlEncode(s.publicKey),
    valid_from: '2026-11-01T00:00:00Z',
    status,
  };
}

function payload(over: Partial<SignedAnchorPayload> & { rootOf?: RootSet } = {}): SignedAnchorPayload {
  const root = over.rootOf ?? rootSet([rootA], 1);
  const { rootOf: _r, ...rest } = over;
  return {
    version: 3,
    identity: 'payments',
    issued_at: '2026-11-30T00:00:00Z',
    expires_at: '2026-12-07T00:00:00Z',
    active_key_id: `sha256:${manifestKey.keyId}`,
    keys: [anchorKey(manifestKey)],
    root: {
      threshold: root.threshold,
      keys: root.keys.map((k) => ({ kid: k.kid, public_key: b64urlEncode(k.publicKey) })),
    },
    ...rest,
  };
}

const bytes = (p: unknown) => Buffer.from(JSON.stringify(p), 'utf8');

describe('signed anchors: JWS JSON General Serialization, EdDSA', () => {
  it('verifies with an independent JOSE library, per signature, kid = SHA-256 of the raw key', async () => {
    // A routine rotation's anchor: the outgoing key, listed retiring, co-signs.
    const routine = payload({ keys: [anchorKey(manifestKey), anchorKey(outgoingKey, 'retiring')] });
    const text = await signAnchorJws(bytes(routine), [rootA, outgoingKey]);
    const jws = JSON.parse(text);
    expect(Object.keys(jws).sort()).toEqual(['payload', 'signatures']);
    expect(jws.signatures).toHaveLength(2);
    for (const s of [rootA, outgoingKey]) {
      const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: b64urlEncode(s.publicKey) }, 'EdDSA');
      const result = await generalVerify(jws, key);
      expect(result.protectedHeader).toMatchObject({ alg: 'EdDSA', kid: keyIdOf(s.publicKey) });
      expect(JSON.parse(Buffer.from(result.payload).toString('utf8'))).toEqual(routine);
    }
    const stranger = await importJWK(
      { kty: 'OKP', crv: 'Ed25519', x: b64urlEncode(attacker.publicKey) },
      'EdDSA',
    );
    await expect(generalVerify(jws, stranger)).rejects.toThrow();

    const trusted = verifySignedAnchor(text, { trusted: rootSet([rootA], 1), now: NOW });
    expect(trusted.version).toBe(3);
    expect(trusted.signedBy.sort()).toEqual([rootA.keyId, outgoingKey.keyId].sort());
    expect(trusted.expiresAt.toISOString()).toBe('2026-12-07T00:00:00.000Z');
  });

  it('refuses an unsigned anchor, an unknown signer and a signature below the threshold', async () => {
    const plain = JSON.stringify(payload());
    expect(() => verifySignedAnchor(plain, { trusted: rootSet([rootA], 1), now: NOW })).toThrow(
      /unsigned trust anchor: refused/,
    );
    const empty = JSON.stringify({ payload: b64urlEncode(bytes(payload())), signatures: [] });
    expect(() => verifySignedAnchor(empty, { trusted: rootSet([rootA], 1), now: NOW })).toThrow(/unsigned/);

    // An attacker's own root, naming itself in the payload: no pinned key signed.
    const forged = await signAnchorJws(bytes(payload({ rootOf: rootSet([attacker], 1) })), [attacker]);
    expect(() => verifySignedAnchor(forged, { trusted: rootSet([rootA], 1), now: NOW })).toThrow(
      /signed by no pinned root key.*unknown signer/,
    );

    const three = rootSet([rootA, rootB, rootC], 2);
    const one = await signAnchorJws(bytes(payload({ rootOf: three })), [rootA]);
    expect(() => verifySignedAnchor(one, { trusted: three, now: NOW })).toThrow(
      /below threshold: 1 of the pinned root keys signed, 2 required/,
    );
    // The same signature twice is one signer.
    const twice = JSON.parse(one);
    twice.signatures.push(twice.signatures[0]);
    expect(() => verifySignedAnchor(JSON.stringify(twice), { trusted: three, now: NOW })).toThrow(
      /below threshold/,
    );
    const two = await signAnchorJws(bytes(payload({ rootOf: three })), [rootA, rootC]);
    expect(verifySignedAnchor(two, { trusted: three, now: NOW }).version).toBe(3);
    // A payload that raises its own threshold above what signed it is held to it.
    const raised = await signAnchorJws(bytes(payload({ rootOf: rootSet([rootA, rootB], 2) })), [rootA]);
    expect(() => verifySignedAnchor(raised, { trusted: rootSet([rootA, rootB], 1), now: NOW })).toThrow(
      /below threshold/,
    );
  });

  it('refuses an altered payload, an expired anchor, a rollback and another identity', async () => {
    const text = await signAnchorJws(bytes(payload()), [rootA]);
    const jws = JSON.parse(text);
    jws.payload = b64urlEncode(
      bytes(payload({ keys: [anchorKey(attacker)], active_key_id: `sha256:${attacker.keyId}` })),
    );
    expect(() => verifySignedAnchor(JSON.stringify(jws), { trusted: rootSet([rootA], 1), now: NOW })).toThrow(
      /does not verify \(the anchor was altered\)/,
    );
    expect(() =>
      verifySignedAnchor(text, { trusted: rootSet([rootA], 1), now: new Date('2026-12-07T00:00:00Z') }),
    ).toThrow(/expired at 2026-12-07T00:00:00Z/);
    expect(() => verifySignedAnchor(text, { trusted: rootSet([rootA], 1), now: NOW, minVersion: 4 })).toThrow(
      /version 3 is lower than 4: rollback refused/,
    );
    expect(verifySignedAnchor(text, { trusted: rootSet([rootA], 1), now: NOW, minVersion: 3 }).version).toBe(
      3,
    );
    expect(() =>
      verifySignedAnchor(text, { trusted: rootSet([rootA], 1), now: NOW, identity: 'billing' }),
    ).toThrow(/anchor of identity payments, not billing/);
  });

  it('refuses other algorithms, a crit header, and the flattened serialization', async () => {
    const text = await signAnchorJws(bytes(payload()), [rootA]);
    const jws = JSON.parse(text);
    const header = (h: object) => b64urlEncode(Buffer.from(JSON.stringify(h)));
    const none = {
      ...jws,
      signatures: [{ ...jws.signatures[0], protected: header({ alg: 'none', kid: rootA.keyId }) }],
    };
    expect(() =>
      verifySignedAnchor(JSON.stringify(none), { trusted: rootSet([rootA], 1), now: NOW }),
    ).toThrow(/alg "none" is not EdDSA/);
    const crit = {
      ...jws,
      signatures: [
        { ...jws.signatures[0], protected: header({ alg: 'EdDSA', kid: rootA.keyId, crit: ['exp'] }) },
      ],
    };
    expect(() =>
      verifySignedAnchor(JSON.stringify(crit), { trusted: rootSet([rootA], 1), now: NOW }),
    ).toThrow(/crit/);
    const flat = { payload: jws.payload, ...jws.signatures[0] };
    expect(() =>
      verifySignedAnchor(JSON.stringify(flat), { trusted: rootSet([rootA], 1), now: NOW }),
    ).toThrow(/flattened JWS/);
  });

  it('root rotation: the new set is trusted only when a threshold of the old and of the new set signed', async () => {
    const next = rootSet([newRoot], 1);
    const p = bytes(payload({ version: 4, rootOf: next }));
    const both = await signAnchorJws(p, [rootA, newRoot]);
    const trusted = verifySignedAnchor(both, { trusted: rootSet([rootA], 1), now: NOW });
    expect(trusted.root.keys.map((k) => k.kid)).toEqual([newRoot.keyId]);
    const oldOnly = await signAnchorJws(p, [rootA]);
    expect(() => verifySignedAnchor(oldOnly, { trusted: rootSet([rootA], 1), now: NOW })).toThrow(
      /root rotation below threshold: 0 of the new root keys signed, 1 required/,
    );
    const newOnly = await signAnchorJws(p, [newRoot]);
    expect(() => verifySignedAnchor(newOnly, { trusted: rootSet([rootA], 1), now: NOW })).toThrow(
      /signed by no pinned root key/,
    );
    // Once the new set is pinned, an anchor signed by it alone is trusted.
    const later = await signAnchorJws(bytes(payload({ version: 5, rootOf: next })), [newRoot]);
    expect(verifySignedAnchor(later, { trusted: trusted.root, now: NOW }).version).toBe(5);
  });

  it('root version: read from root.version (1 when absent), a bad one refused; ignoreExpiry only lifts expiry', async () => {
    const trusted = rootSet([rootA], 1);
    const legacy = await signAnchorJws(bytes(payload()), [rootA]);
    expect(verifySignedAnchor(legacy, { trusted, now: NOW }).rootVersion).toBe(1);
    const numbered = payload();
    numbered.root = { version: 4, ...numbered.root };
    const v4 = await signAnchorJws(bytes(numbered), [rootA]);
    expect(verifySignedAnchor(v4, { trusted, now: NOW }).rootVersion).toBe(4);
    // Standard JOSE still verifies it: the version is just another payload member.
    const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: b64urlEncode(rootA.publicKey) }, 'EdDSA');
    expect((await generalVerify(JSON.parse(v4), key)).protectedHeader?.kid).toBe(rootA.keyId);
    for (const bad of [0, -1, 1.5, '2']) {
      const p = payload();
      p.root = { ...p.root, version: bad as number };
      const text = await signAnchorJws(bytes(p), [rootA]);
      expect(() => verifySignedAnchor(text, { trusted, now: NOW })).toThrow(
        /payload field root.version must be a positive integer/,
      );
    }
    const later = new Date('2027-01-01T00:00:00Z');
    expect(() => verifySignedAnchor(v4, { trusted, now: later })).toThrow(/expired at/);
    expect(verifySignedAnchor(v4, { trusted, now: later, ignoreExpiry: true }).version).toBe(3);
    expect(() =>
      verifySignedAnchor(v4, { trusted: rootSet([attacker], 1), now: later, ignoreExpiry: true }),
    ).toThrow(/signed by no pinned root key/);
  });

  it('with the pinned root version: a lower set, or the same version with other keys or a lower threshold, is refused though the pinned keys signed it', async () => {
    const pinned = rootSet([rootA, rootB], 2);
    const named = (version: number, root: RootSet) => {
      const p = payload({ version: 6, rootOf: root });
      p.root = { version, ...p.root };
      return bytes(p);
    };
    const options = { trusted: pinned, now: NOW, rootVersion: 3 };
    // The pinned set itself, at its own version: trusted.
    const same = await signAnchorJws(named(3, pinned), [rootA, rootB]);
    expect(verifySignedAnchor(same, options).rootVersion).toBe(3);
    // A lower version naming the pinned keys: only the root holders can make it, still refused.
    const lower = await signAnchorJws(named(2, pinned), [rootA, rootB]);
    expect(verifySignedAnchor(lower, { trusted: pinned, now: NOW }).rootVersion).toBe(2);
    expect(() => verifySignedAnchor(lower, options)).toThrow(
      /^signed anchor: names root set 2, below the pinned set 3: refused$/,
    );
    // The same version with a key added, or with a lower threshold: a new set without a new version.
    const added = await signAnchorJws(named(3, rootSet([rootA, rootB, rootC], 2)), [rootA, rootB, rootC]);
    expect(verifySignedAnchor(added, { trusted: pinned, now: NOW }).root.keys).toHaveLength(3);
    expect(() => verifySignedAnchor(added, options)).toThrow(
      /^signed anchor: names root set 3 with other keys or a lower threshold than the pinned set 3: a new set needs a new version: refused$/,
    );
    const weaker = await signAnchorJws(named(3, rootSet([rootA, rootB], 1)), [rootA, rootB]);
    expect(() => verifySignedAnchor(weaker, options)).toThrow(/with other keys or a lower threshold/);
    // A pinner asking for fewer signatures than the set's own threshold is not a change of set.
    expect(verifySignedAnchor(same, { ...options, trusted: rootSet([rootA, rootB], 1) }).version).toBe(6);
    // A higher version is a rotation, judged as before.
    const next = await signAnchorJws(named(4, rootSet([newRoot], 1)), [rootA, rootB, newRoot]);
    expect(verifySignedAnchor(next, options).rootVersion).toBe(4);
  });
});
