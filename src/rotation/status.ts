/** Which rotation, and how it stands: the live status of a running one, the result of one that ended. */
import { WorkflowNotFoundError } from '@temporalio/client';
import { errorMessage, RotorError, UsageError } from '../errors';
import type { rotationWorkflow } from '../workflows/rotation';
import { type RotationStatus, rotationWorkflowId, statusQuery } from '../workflows/rotation-api';
import { needingWorker, ROTATION_TYPE, type RotationTemporal } from './temporal';

export const ROTATION_PREFIX = rotationWorkflowId('');

/** The running rotation's live status, or the final status of one that ended. */
export async function fetchStatus(t: RotationTemporal, workflowId: string): Promise<RotationStatus> {
  const handle = t.client.workflow.getHandle<typeof rotationWorkflow>(workflowId);
  const d = await describeRotation(t, workflowId);
  if (d.status.name === 'RUNNING') {
    return needingWorker(t, 'the status query', 15, () => handle.query(statusQuery));
  }
  if (d.status.name === 'COMPLETED') return handle.result();
  try {
    return await needingWorker(t, 'the status query', 15, () => handle.query(statusQuery));
  } catch (err) {
    throw new RotorError(
      `rotation ${workflowId} ended ${d.status.name.toLowerCase()} and its last status cannot be read (${errorMessage(err)})`,
      'ROTATION_STATUS_UNAVAILABLE',
    );
  }
}

/** Temporal's description of the rotation workflow; RotorError `ROTATION_NOT_FOUND` when there is none. */
export async function describeRotation(t: RotationTemporal, workflowId: string) {
  try {
    return await t.client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new RotorError(
        `no rotation ${workflowId} in namespace ${t.config.namespace}`,
        'ROTATION_NOT_FOUND',
      );
    }
    throw err;
  }
}

/** A visibility query for the rotations on this task queue, and `extra`. */
export function visibilityQuery(t: RotationTemporal, extra?: string): string {
  const q = [`WorkflowType='${ROTATION_TYPE}'`, `TaskQueue='${quote(t.config.taskQueue)}'`];
  if (extra) q.push(extra);
  return q.join(' AND ');
}

export function quote(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

/** The identity named, or the identity of the one rotation running on this task queue. */
export async function resolveIdentity(t: RotationTemporal, identity: string | undefined): Promise<string> {
  if (identity !== undefined) {
    if (!identity.trim()) throw new UsageError('identity must not be empty', 'ROTATION_IDENTITY');
    return identity;
  }
  const running: string[] = [];
  for await (const w of t.client.workflow.list({ query: visibilityQuery(t, "ExecutionStatus='Running'") })) {
    running.push(w.workflowId);
    if (running.length > 10) break;
  }
  const identities = [...new Set(running)].map((id) => id.slice(ROTATION_PREFIX.length));
  if (identities.length === 1) return identities[0]!;
  if (identities.length === 0)
    throw new UsageError('no rotation is running: name the identity', 'ROTATION_IDENTITY');
  throw new UsageError(
    `${identities.length} rotations are running (${identities.join(', ')}): name the identity`,
    'ROTATION_IDENTITY',
  );
}
