/**
 * Signing a trust anchor version with the identity's root keys (and, for a routine rotation, the
 * outgoing signing key), through the custodians: the store calls back here from inside its
 * publishing transaction, so the workflow never carries key material and a version is never
 * stored without its signatures.
 */
import type { CustodianKind, KeyCustodian } from '../custody/custodian';
import { type RootSet, signAnchorJws } from '../manifest';
import type { Signer } from '../manifest/signer';
import { currentRootSet, rootSetVersion, type StoredRootSet } from '../store/anchor-roots';
import { activeKey, type KeyRecord, requireKey } from '../store/keys';
import type { Queryable } from '../store/queryable';
import type { AnchorSigning } from '../store/trust-anchors';

export { DEFAULT_ANCHOR_LIFETIME_SECONDS } from '../config';

export type CustodianFor = (kind: CustodianKind) => Promise<KeyCustodian>;

export function rootSetOf(stored: StoredRootSet): RootSet {
  return {
    threshold: stored.threshold,
    keys: stored.keys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })),
  };
}

/** The custodian's signer for a registered key (root keys live in the custodian too). */
export async function signerOf(custodianFor: CustodianFor, key: KeyRecord): Promise<Signer> {
  const custodian = await custodianFor(key.custodian as CustodianKind);
  return custodian.signer(key.handle);
}

export interface AnchorSigningOptions {
  lifetimeSeconds: number;
  /** Keys that co-sign (the outgoing signing key of a routine rotation); skipped when no longer held. */
  coSignKeyIds?: string[];
  renewIfExpiresBefore?: Date;
  /** Sign with this root set rather than the identity's current one (root rotation, before it is stored). */
  root?: StoredRootSet;
}

/**
 * How to sign the identity's next anchor, or undefined when the identity has no root set yet
 * (an identity set up before signed anchors: `rotor anchor root init` gives it one).
 */
export async function anchorSigningFor(
  q: Queryable,
  custodianFor: CustodianFor,
  identity: string,
  options: AnchorSigningOptions,
): Promise<AnchorSigning | undefined> {
  const root = options.root ?? (await currentRootSet(q, identity));
  if (!root) return undefined;
  const revocation = await activeKey(q, identity, 'revocation');
  return {
    root: { version: root.rootVersion, set: rootSetOf(root) },
    revocationKey: revocation ? { keyId: revocation.keyId, publicKey: revocation.publicKey } : undefined,
    lifetimeSeconds: options.lifetimeSeconds,
    renewIfExpiresBefore: options.renewIfExpiresBefore,
    async sign(payload, ctx) {
      const keys: KeyRecord[] = [...root.keys];
      // TUF root rotation: the anchor naming set N+1 is signed by set N too.
      if (ctx.previousRootVersion !== null && ctx.previousRootVersion !== root.rootVersion) {
        const previous = await rootSetVersion(q, identity, ctx.previousRootVersion);
        if (previous)
          keys.push(...previous.keys.filter((k) => k.state === 'active' || k.state === 'retiring'));
      }
      for (const id of options.coSignKeyIds ?? []) {
        const key = await requireKey(q, id);
        if (key.state === 'active' || key.state === 'retiring') keys.push(key);
      }
      const signers: Signer[] = [];
      for (const k of keys) signers.push(await signerOf(custodianFor, k));
      return signAnchorJws(payload, signers);
    },
  };
}
