/**
 * The anchor root's lifecycle (issue 12, TUF's root role): give an identity set up before signed
 * anchors its first root set, rotate the root set (the anchor naming set N+1 is signed by a
 * threshold of set N and of set N+1), and re-sign the current anchor before it expires. Each one
 * publishes the identity's current anchor content again, signed, as a new version.
 */
import type { CustodianKind, GeneratedKey, KeyCustodian } from '../custody/custodian';
import { RotorError, UsageError } from '../errors';
import { b64urlDecode } from '../manifest';
import { addRootSet, currentRootSet, type StoredRootSet } from '../store/anchor-roots';
import { inTransaction, type Pool } from '../store/db';
import { activeKey, type KeyRecord, registerKey, transitionKey } from '../store/keys';
import type { Queryable } from '../store/queryable';
import {
  currentTrustAnchor,
  type PublishedTrustAnchor,
  publishTrustAnchor,
  type TrustAnchorInput,
} from '../store/trust-anchors';
import { anchorSigningFor, type CustodianFor } from './anchor-signing';
import { DEFAULT_CRL_META_LIFETIME_SECONDS, signCrlHeaders } from './crl-meta';

/** The current anchor's content as publishing input: what a re-signed version says again. */
async function currentContent(q: Queryable, identity: string): Promise<TrustAnchorInput> {
  const current = await currentTrustAnchor(q, identity);
  if (!current) {
    throw new RotorError(
      `identity ${identity} has no trust anchor: run rotor key init --identity ${identity} first`,
      'ANCHOR_NONE',
    );
  }
  return {
    activeKeyId: current.document.active_key_id.slice('sha256:'.length),
    keys: current.document.keys.map((k) => ({
      keyId: k.key_id.slice('sha256:'.length),
      publicKey: b64urlDecode(k.public_key),
      validFrom: k.valid_from,
      ...(k.status === undefined ? {} : { status: k.status }),
      ...(k.valid_until === undefined ? {} : { validUntil: k.valid_until }),
    })),
  };
}

export interface RootChange {
  root: StoredRootSet;
  anchor: PublishedTrustAnchor;
  retired: KeyRecord[];
}

function checkCounts(count: number, threshold: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > 16) {
    throw new UsageError(`--keys must be between 1 and 16, got ${count}`);
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > count) {
    throw new UsageError(`--threshold must be between 1 and ${count}, got ${threshold}`);
  }
}

/**
 * Makes `count` new root keys (and a revocation key when the identity has none), records them as
 * the identity's next root set and publishes the current anchor content signed by it (and, on a
 * rotation, by the set before). The previous set's keys are retired in the same transaction.
 */
async function newRootSet(
  pool: Pool,
  custodian: KeyCustodian,
  identity: string,
  options: {
    count: number;
    threshold: number;
    lifetimeSeconds: number;
    mustExist: boolean;
    /** ROTOR_CRL_META_LIFETIME_SECONDS (src/config.ts); default 1 hour. */
    crlMetaLifetimeSeconds?: number;
  },
): Promise<RootChange> {
  checkCounts(options.count, options.threshold);
  const previous = await currentRootSet(pool, identity);
  if (options.mustExist && !previous) {
    throw new RotorError(
      `identity ${identity} has no anchor root to rotate: rotor anchor root init --identity ${identity}`,
      'ROOT_NONE',
    );
  }
  if (!options.mustExist && previous) {
    throw new RotorError(
      `identity ${identity} already has anchor root set ${previous.rootVersion}: use rotor anchor root rotate`,
      'ROOT_EXISTS',
    );
  }
  const content = await currentContent(pool, identity);
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const nextVersion = (previous?.rootVersion ?? 0) + 1;
  const made: GeneratedKey[] = [];
  let change: RootChange;
  let madeRevocation = false;
  try {
    for (let i = 1; i <= options.count; i++) {
      made.push(await custodian.generate(`rotor/${identity}/root-${nextVersion}.${i}/${stamp}`));
    }
    const needRevocation = !(await activeKey(pool, identity, 'revocation'));
    const revocation = needRevocation
      ? await custodian.generate(`rotor/${identity}/revocation/${stamp}`)
      : null;
    if (revocation) made.push(revocation);
    madeRevocation = revocation !== null;
    change = await inTransaction(pool, async (client) => {
      const register = async (g: GeneratedKey, role: 'root' | 'revocation') =>
        registerKey(client, {
          identity,
          keyId: g.keyId,
          publicKey: g.publicKey,
          custodian: custodian.kind as CustodianKind,
          handle: g.handle,
          state: 'active',
          role,
          description: await custodian.describe(g.handle),
        });
      const rootKeys: KeyRecord[] = [];
      for (const g of made.slice(0, options.count)) rootKeys.push(await register(g, 'root'));
      if (revocation) await register(revocation, 'revocation');
      const root = await addRootSet(
        client,
        identity,
        options.threshold,
        rootKeys.map((k) => k.keyId),
      );
      const signing = await anchorSigningFor(client, async () => custodian, identity, {
        lifetimeSeconds: options.lifetimeSeconds,
        root,
      });
      const anchor = await publishTrustAnchor(client, identity, content, signing);
      const retired: KeyRecord[] = [];
      for (const k of previous?.keys ?? []) {
        if (k.state === 'active') retired.push(await transitionKey(client, k.keyId, 'retired'));
      }
      return { root, anchor, retired };
    });
  } catch (err) {
    // Best-effort cleanup of keys nothing refers to; the error that stopped the change is rethrown.
    for (const g of made) await custodian.destroy(g.handle).catch(() => {});
    throw err;
  }
  // A revocation key made just now signs its first CRL header (crl-meta.ts), once it is registered.
  if (madeRevocation) {
    await signCrlHeaders(pool, async () => custodian, {
      identity,
      lifetimeSeconds: options.crlMetaLifetimeSeconds ?? DEFAULT_CRL_META_LIFETIME_SECONDS,
    });
  }
  return change;
}

export function initAnchorRoot(
  pool: Pool,
  custodian: KeyCustodian,
  identity: string,
  options: { count: number; threshold: number; lifetimeSeconds: number; crlMetaLifetimeSeconds?: number },
): Promise<RootChange> {
  return newRootSet(pool, custodian, identity, { ...options, mustExist: false });
}

export function rotateAnchorRoot(
  pool: Pool,
  custodian: KeyCustodian,
  identity: string,
  options: { count: number; threshold: number; lifetimeSeconds: number; crlMetaLifetimeSeconds?: number },
): Promise<RootChange> {
  return newRootSet(pool, custodian, identity, { ...options, mustExist: true });
}

/**
 * Re-signs the current anchor as a new version when it expires within `withinSeconds` (or is
 * unsigned); otherwise leaves it. Returns the anchor and whether a version was published.
 */
export async function renewAnchor(
  pool: Pool,
  custodianFor: CustodianFor,
  identity: string,
  options: { withinSeconds: number; lifetimeSeconds: number },
): Promise<PublishedTrustAnchor & { published: boolean }> {
  const content = await currentContent(pool, identity);
  const signing = await anchorSigningFor(pool, custodianFor, identity, {
    lifetimeSeconds: options.lifetimeSeconds,
    renewIfExpiresBefore: new Date(Date.now() + options.withinSeconds * 1000),
  });
  if (!signing) {
    throw new RotorError(
      `identity ${identity} has no anchor root: rotor anchor root init --identity ${identity}`,
      'ROOT_NONE',
    );
  }
  return publishTrustAnchor(pool, identity, content, signing);
}
