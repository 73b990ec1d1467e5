/**
 * What the anchor upkeep Temporal Schedule starts (`rotor anchor schedule create`): one activity
 * that re-signs the identity's anchor when it is due (src/activities/anchor-upkeep.ts). Retried
 * with backoff while Postgres or the HSM are away; a run that has not succeeded when the next one
 * is due is skipped by the schedule's overlap policy, not doubled.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RotationActivities } from '../activities';
import type { AnchorUpkeepInput, AnchorUpkeepResult } from '../activities/anchor-upkeep';

const { renewAnchorIfDue } = proxyActivities<RotationActivities>({
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 30,
  },
});

export async function anchorUpkeepWorkflow(input: AnchorUpkeepInput): Promise<AnchorUpkeepResult> {
  return renewAnchorIfDue(input);
}
