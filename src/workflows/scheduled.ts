/**
 * What the 90-day Temporal Schedule starts. It runs the identity's rotation as a child under the
 * one workflow id a rotation of that identity may have, so a rotation already running (started by
 * hand, say) makes this start a skip, never a second rotation. The rotation's own preflight skips
 * it when the active key is younger than the policy's minimum age (a key rotated early).
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { executeChild, ParentClosePolicy, workflowInfo } from '@temporalio/workflow';
import type { CustodianKind, RotationPolicy } from './policy';
import { rotationWorkflow } from './rotation';
import { type RotationStatus, rotationWorkflowId } from './rotation-api';

export interface ScheduledRotationInput {
  identity: string;
  custodian: CustodianKind;
  policy?: Partial<RotationPolicy>;
}

export interface ScheduledRotationResult {
  started: boolean;
  reason: string;
  rotation?: RotationStatus;
}

export async function scheduledRotationWorkflow(
  input: ScheduledRotationInput,
): Promise<ScheduledRotationResult> {
  const scheduleRun = workflowInfo().workflowId;
  try {
    const rotation = await executeChild(rotationWorkflow, {
      workflowId: rotationWorkflowId(input.identity),
      args: [
        {
          identity: input.identity,
          trigger: 'scheduled',
          policy: input.policy,
          custodian: input.custodian,
          requestedBy: `schedule:${scheduleRun}`,
          reason: '90-day scheduled rotation',
        },
      ],
      // The rotation is the unit of work: it finishes even if this wrapper is terminated.
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    return { started: true, reason: rotation.outcome ?? rotation.phase, rotation };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { started: false, reason: `skipped: ${rotationWorkflowId(input.identity)} is already running` };
    }
    throw err;
  }
}
