/**
 * Runbook step 6 (t=1h): the old private key destroyed in its custodian, its public key archived
 * in the registry until the retention date. Also destroys a rolled-back (quarantined) new key.
 * Safe to retry: destroying a key already gone is a no-op, and each transition is idempotent.
 */
import type { CustodianKind } from '../custody/custodian';
import { RotorError } from '../errors';
import { requireKey, transitionKey } from '../store/keys';
import type { ActivityDeps } from './deps';
import type { DecommissionInput, DecommissionResult } from './types';

const DAY_MS = 86_400_000;

export function decommissionActivities(deps: ActivityDeps) {
  async function decommissionKey(input: DecommissionInput): Promise<DecommissionResult> {
    let key = await requireKey(deps.pool, input.keyId);
    if (key.state === 'destroyed') {
      return {
        destroyedAt: key.destroyedAt!.toISOString(),
        retentionUntil: key.retentionUntil!.toISOString(),
      };
    }
    if (key.state === 'active' || key.state === 'pending') {
      throw new RotorError(
        `key ${key.keyId} is ${key.state}: only a retiring, retired or quarantined key is destroyed`,
        'KEY_STATE',
      );
    }
    if (key.state === 'retiring') key = await transitionKey(deps.pool, key.keyId, 'retired');
    const custodian = await deps.custodian(key.custodian as CustodianKind);
    await custodian.destroy(key.handle);
    const now = new Date();
    const retentionUntil = new Date(now.getTime() + input.retentionDays * DAY_MS);
    key = await transitionKey(deps.pool, key.keyId, 'destroyed', { at: now, retentionUntil });
    return { destroyedAt: key.destroyedAt!.toISOString(), retentionUntil: key.retentionUntil!.toISOString() };
  }

  return { decommissionKey };
}
