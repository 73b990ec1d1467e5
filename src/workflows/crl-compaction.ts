/**
 * What the CRL compaction Temporal Schedule starts (`rotor crl schedule create`): one activity
 * that compacts the served CRL and signs every identity's CRL header again
 * (src/activities/crl-compaction.ts). Retried with backoff while Postgres or the HSM are away; a
 * run still going when the next is due is skipped by the schedule's overlap policy.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RotationActivities } from '../activities';
import type { CrlCompactionInput, CrlCompactionResult } from '../activities/crl-compaction';

const { compactCrlOnSchedule } = proxyActivities<RotationActivities>({
  startToCloseTimeout: '10 minutes',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 30,
  },
});

export async function crlCompactionWorkflow(input: CrlCompactionInput): Promise<CrlCompactionResult> {
  return compactCrlOnSchedule(input);
}
