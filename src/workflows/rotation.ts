/**
 * The key rotation runbook (docs/runbook-key-rotation.txt) as a durable workflow. Read top to
 * bottom, each path is the runbook's timeline; the step order is the policy's (`plannedSteps`),
 * and `runStep` refuses to run a step out of it. Controls (pause, resume, rollback, abort,
 * escalate) live in `controls.ts`; timeouts, retries, audit and the undo paths in `run.ts`.
 */

import type { RotationInput, RotationStatus } from './rotation-api';
import { RotationRun } from './run';

export async function rotationWorkflow(input: RotationInput): Promise<RotationStatus> {
  const r = new RotationRun(input);
  await r.record();
  return r.conclude(
    async () => {
      const ended = await r.preflight();
      if (ended) return ended;
      await r.keygen(); // t=0: the new key, inside the target custodian
      return r.status.path === 'compromise' ? compromisePath(r) : overlapPath(r);
    },
    // An escalation continues here from wherever the rotation stood.
    () => compromisePath(r),
  );
}

/** Scheduled, personnel and HSM-replacement rotations: both keys overlap, then the old one goes. */
async function overlapPath(r: RotationRun): Promise<RotationStatus> {
  // t=5m: every active manifest of the old key gets its re-issued twin, signed by the new key.
  await r.waitFor('re-sign');
  await r.runStep('re-sign', () => r.resign('active', r.status.progress.resign));
  await r.holdForUnresignable();
  // t=5m: in one transaction, the old key retiring, the new one active, the anchor listing both.
  await r.runStep('publish-anchor', () => r.switchAnchor('dual'));
  // Until t=30m (or later): every live verifier holds the new anchor.
  // Agents switch to the twins only then; until now `rotor serve` handed out the originals.
  await r.runStep('await-adoption', async () => {
    const adopted = await r.gate('adoption');
    await r.releaseDelivery(r.newKey, r.status.anchorVersion!, 'verifier adoption gate passed');
    return adopted;
  });
  // Until t=35m: what verifiers reject of either key is watched (analysis gate); at t=35m, the
  // agents have picked up their twins (pickup gate). Either one holds revocation.
  await r.runStep('pre-revocation', () => r.preRevocationGates());
  // t=35m: one signed revocation record per superseded manifest of the old key. No way back.
  await r.waitFor('revoke');
  await r.runStep('revoke', () => r.revoke(['superseded']));
  // t=1h: once every live verifier accepted the new key, the old key is destroyed and leaves the anchor.
  await r.waitFor('decommission');
  await r.runStep('decommission', async () => {
    await r.gate('acceptance');
    const destroyed = await r.destroyOldKey();
    return { destroyed: r.oldKey, ...(await r.switchAnchor('final', destroyed)) };
  });
  return r.finish('completed', `rotated ${r.oldKey.slice(0, 12)}… → ${r.newKey.slice(0, 12)}…`);
}

/** A compromise, or an escalated rotation: distrust the old key first, revoke, then re-issue. */
async function compromisePath(r: RotationRun): Promise<RotationStatus> {
  if (!r.status.newKeyId) await r.keygen();
  // At once: the old key retired and out of the anchor; verifiers see INVALID until re-issued.
  // The old key is distrusted from here: each twin is handed out as soon as it exists.
  await r.runStep('publish-anchor', async () => {
    const switched = await r.switchAnchor('distrust');
    await r.releaseDelivery(r.newKey, null, 'compromise: the old key is no longer trusted');
    return switched;
  });
  await r.notify(
    'critical',
    `rotor: key compromise on ${r.input.identity}: key ${r.oldKey.slice(0, 12)}… removed from the trust anchor and its manifests revoked; expect INVALID and REVOKED results until re-issued manifests are deployed`,
  );
  // Every manifest of the old key revoked (records signed by the new key), then re-issued.
  await r.runStep('revoke', () => r.revoke(['active', 'superseded']));
  await r.runStep('re-sign', () => r.resign('revoked', r.status.progress.resign));
  await r.runStep('decommission', async () => ({ destroyed: r.oldKey, ...(await r.destroyOldKey()) }));
  return r.finish('completed', 'compromise handled: old key revoked, destroyed; manifests re-issued');
}
