/**
 * Runbook step 6 (t=1h): the old private key destroyed in its custodian, its public key archived
 * in the registry until the retention date. Also destroys a rolled-back (quarantined) new key.
 * Safe to retry: destroying a key already gone is a no-op, and each transition is idempotent.
 */
import type { CustodianKind } from '../custody/custodian';
import { RotorError } from '../errors';
import { requireKey, transitionKey } from '../store/keys';
import { type ActivityDeps, activityContext } from './deps';
import type { DecommissionInput, DecommissionResult } from './types';

const DAY_MS = 86_400_000;

/**
 * Zero downtime for manifests too close to expiry to re-issue (README, "Manifests near expiry"):
 * this run declined them as `expiring`, left them active and unrevoked, and the old key stays in
 * the anchor, verify-only, until the last of them has expired. Null when there is none.
 */
async function lastExpiringManifest(deps: ActivityDeps, keyId: string): Promise<string | null> {
  const runId = activityContext()?.info.workflowExecution?.runId;
  if (runId === undefined) return null;
  const { rows } = await deps.pool.query<{ until: Date | null }>(
    `SELECT max(m.expires_at) AS until FROM manifests m
       JOIN rotation_declined d ON d.manifest_id = m.manifest_id AND d.run_id = $2 AND d.code = 'expiring'
      WHERE m.key_id = $1 AND m.status = 'active' AND m.expires_at > now()`,
    [keyId, runId],
  );
  return rows[0]?.until ? rows[0].until.toISOString() : null;
}

export function decommissionActivities(deps: ActivityDeps) {
  async function decommissionKey(input: DecommissionInput): Promise<DecommissionResult> {
    const holdUntil = await lastExpiringManifest(deps, input.keyId);
    const hold = holdUntil === null ? {} : { holdUntil };
    let key = await requireKey(deps.pool, input.keyId);
    if (key.state === 'destroyed') {
      return {
        destroyedAt: key.destroyedAt!.toISOString(),
        retentionUntil: key.retentionUntil!.toISOString(),
        ...hold,
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
    return {
      destroyedAt: key.destroyedAt!.toISOString(),
      retentionUntil: key.retentionUntil!.toISOString(),
      ...hold,
    };
  }

  return { decommissionKey };
}
