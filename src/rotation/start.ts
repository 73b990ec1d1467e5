/** Starting a rotation: one workflow per identity, so a second start names the one in the way. */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { RotorError } from '../errors';
import type { rotationWorkflow } from '../workflows/rotation';
import { type RotationInput, rotationWorkflowId } from '../workflows/rotation-api';
import { ROTATION_TYPE, type RotationTemporal } from './temporal';

export async function startRotation(
  t: RotationTemporal,
  input: RotationInput,
): Promise<{ workflowId: string; runId: string }> {
  const workflowId = rotationWorkflowId(input.identity);
  try {
    const handle = await t.client.workflow.start<typeof rotationWorkflow>(ROTATION_TYPE, {
      workflowId,
      taskQueue: t.config.taskQueue,
      args: [input],
      memo: { identity: input.identity, trigger: input.trigger, requestedBy: input.requestedBy },
    });
    return { workflowId, runId: handle.firstExecutionRunId };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    let running = workflowId;
    try {
      const d = await t.client.workflow.getHandle(workflowId).describe();
      running = `${workflowId} (run ${d.runId}, started ${d.startTime.toISOString()})`;
    } catch {
      // The name alone still says which workflow is in the way.
    }
    throw new RotorError(
      `a rotation of ${input.identity} is already running: ${running}; watch it with rotor rotate status ${input.identity}`,
      'ROTATION_ALREADY_RUNNING',
    );
  }
}
