/**
 * Before the runbook: a signing identity's first key, generated in a custodian, registered
 * active, and announced in version 1 of the identity's trust anchor, in one transaction so an
 * identity never has an active key that verifiers cannot learn about.
 */
import type { CustodianKind, KeyCustodian } from '../custody/custodian';
import { RotorError, UsageError } from '../errors';
import { inTransaction, type Pool } from '../store/db';
import { activeKey, type KeyRecord, registerKey } from '../store/keys';
import { type PublishedTrustAnchor, publishTrustAnchor } from '../store/trust-anchors';

export interface InitIdentityResult {
  key: KeyRecord;
  anchor: PublishedTrustAnchor;
}

export async function initIdentity(
  pool: Pool,
  custodian: KeyCustodian,
  identity: string,
  label = `rotor/${identity}/${new Date().toISOString().replace(/[-:.]/g, '')}`,
): Promise<InitIdentityResult> {
  if (!identity.trim()) throw new UsageError('a signing identity needs a name');
  const current = await activeKey(pool, identity);
  if (current) {
    throw new RotorError(
      `identity ${identity} already has an active key ${current.keyId}: rotate it instead of running key init`,
      'KEY_INIT_EXISTS',
    );
  }
  const generated = await custodian.generate(label);
  try {
    const description = await custodian.describe(generated.handle);
    return await inTransaction(pool, async (client) => {
      const key = await registerKey(client, {
        identity,
        keyId: generated.keyId,
        publicKey: generated.publicKey,
        custodian: custodian.kind as CustodianKind,
        handle: generated.handle,
        state: 'active',
        description,
      });
      const anchor = await publishTrustAnchor(client, identity, {
        activeKeyId: key.keyId,
        keys: [{ keyId: key.keyId, publicKey: key.publicKey, validFrom: key.activatedAt!, status: 'active' }],
      });
      return { key, anchor };
    });
  } catch (err) {
    // Nothing refers to a key the registry refused: do not leave it in the custodian.
    await custodian.destroy(generated.handle).catch(() => {});
    throw err;
  }
}
