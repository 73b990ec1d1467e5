/**
 * Signed anchors in tests that publish through the store directly: root keys held in this
 * process (software signers), the same `AnchorSigning` shape the activities build over a
 * custodian.
 */
import { type RootSet, type Signer, signAnchorJws } from '../../src/manifest';
import type { AnchorSigning } from '../../src/store/trust-anchors';

export function pinnedRootOf(signers: Signer[], threshold = 1): RootSet {
  return { threshold, keys: signers.map((s) => ({ kid: s.keyId, publicKey: s.publicKey })) };
}

export function testAnchorSigning(
  roots: Signer[],
  options: {
    threshold?: number;
    rootVersion?: number;
    lifetimeSeconds?: number;
    /** Who actually signs (default: every root). */
    signers?: Signer[];
    revocationKey?: Signer;
  } = {},
): AnchorSigning {
  return {
    root: { version: options.rootVersion ?? 1, set: pinnedRootOf(roots, options.threshold ?? 1) },
    revocationKey: options.revocationKey
      ? { keyId: options.revocationKey.keyId, publicKey: options.revocationKey.publicKey }
      : undefined,
    lifetimeSeconds: options.lifetimeSeconds ?? 7 * 24 * 3600,
    sign: (payload) => signAnchorJws(payload, options.signers ?? roots),
  };
}
