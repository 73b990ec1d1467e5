/**
 * Before the runbook: a signing identity's first key, generated in a custodian, registered
 * active, and announced in version 1 of the identity's trust anchor, in one transaction so an
 * identity never has an active key that verifiers cannot learn about. The identity also gets its
 * anchor root (root keys that sign every anchor, issue 12) and its revocation key (signs every
 * CRL record, ADR-0007), made in the same custodian but never used to sign manifests.
 */
import type { CustodianKind, GeneratedKey, KeyCustodian } from '../custody/custodian';
import { RotorError, UsageError } from '../errors';
import { addRootSet } from '../store/anchor-roots';
import { inTransaction, type Pool } from '../store/db';
import { activeKey, type KeyRecord, type KeyRole, registerKey } from '../store/keys';
import { type PublishedTrustAnchor, publishTrustAnchor } from '../store/trust-anchors';
import { anchorSigningFor, DEFAULT_ANCHOR_LIFETIME_SECONDS } from './anchor-signing';
import { DEFAULT_CRL_META_LIFETIME_SECONDS, signCrlHeaders } from './crl-meta';

export interface InitIdentityResult {
  key: KeyRecord;
  anchor: PublishedTrustAnchor;
  rootKeys: KeyRecord[];
  revocationKey: KeyRecord;
}

export interface InitIdentityOptions {
  /** How many root keys (default 1) and how many of them must sign (default 1). */
  rootKeys?: number;
  rootThreshold?: number;
  anchorLifetimeSeconds?: number;
  /** How long the first signed CRL header holds (default ROTOR_CRL_META_LIFETIME_SECONDS, 1 hour). */
  crlMetaLifetimeSeconds?: number;
}

export async function initIdentity(
  pool: Pool,
  custodian: KeyCustodian,
  identity: string,
  label = `rotor/${identity}/${new Date().toISOString().replace(/[-:.]/g, '')}`,
  options: InitIdentityOptions = {},
): Promise<InitIdentityResult> {
  if (!identity.trim()) throw new UsageError('a signing identity needs a name');
  const rootCount = options.rootKeys ?? 1;
  const threshold = options.rootThreshold ?? 1;
  if (!Number.isSafeInteger(rootCount) || rootCount < 1 || rootCount > 16) {
    throw new UsageError(`--root-keys must be between 1 and 16, got ${rootCount}`);
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > rootCount) {
    throw new UsageError(`--root-threshold must be between 1 and ${rootCount}, got ${threshold}`);
  }
  const current = await activeKey(pool, identity);
  if (current) {
    throw new RotorError(
      `identity ${identity} already has an active key ${current.keyId}: rotate it instead of running key init`,
      'KEY_INIT_EXISTS',
    );
  }
  const made: GeneratedKey[] = [];
  let result: InitIdentityResult;
  try {
    const generated = await custodian.generate(label);
    made.push(generated);
    const roots: GeneratedKey[] = [];
    for (let i = 1; i <= rootCount; i++) {
      const root = await custodian.generate(`${label}/root-1.${i}`);
      made.push(root);
      roots.push(root);
    }
    const revocation = await custodian.generate(`${label}/revocation`);
    made.push(revocation);
    const register = async (client: Queryable, g: GeneratedKey, role: KeyRole) =>
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
    result = await inTransaction(pool, async (client) => {
      const key = await register(client, generated, 'signing');
      const rootKeys: KeyRecord[] = [];
      for (const r of roots) rootKeys.push(await register(client, r, 'root'));
      const revocationKey = await register(client, revocation, 'revocation');
      await addRootSet(
        client,
        identity,
        threshold,
        rootKeys.map((k) => k.keyId),
      );
      const signing = await anchorSigningFor(client, async () => custodian, identity, {
        lifetimeSeconds: options.anchorLifetimeSeconds ?? DEFAULT_ANCHOR_LIFETIME_SECONDS,
      });
      const anchor = await publishTrustAnchor(
        client,
        identity,
        {
          activeKeyId: key.keyId,
          keys: [
            { keyId: key.keyId, publicKey: key.publicKey, validFrom: key.activatedAt!, status: 'active' },
          ],
        },
        signing,
      );
      return { key, anchor, rootKeys, revocationKey };
    });
  } catch (err) {
    // Nothing refers to a key the registry refused: do not leave it in the custodian.
    for (const g of made) await custodian.destroy(g.handle).catch(() => {});
    throw err;
  }
  // The new revocation key signs its first CRL header at once, so verifiers holding this anchor
  // can check the CRL before anything is revoked (crl-meta.ts). Outside the cleanup above: the
  // keys are registered by now.
  await signCrlHeaders(pool, async () => custodian, {
    identity,
    lifetimeSeconds: options.crlMetaLifetimeSeconds ?? DEFAULT_CRL_META_LIFETIME_SECONDS,
  });
  return result;
}

type Queryable = Parameters<typeof registerKey>[0];
