/**
 * Runbook step 6's audit record, kept for every phase: the hash-chained audit log, and the
 * rotations table that `rotor rotate list` and the 90-day policy read.
 */
import { appendAudit } from '../store/audit';
import { upsertRotation } from '../store/rotations';
import type { ActivityDeps } from './deps';
import type { AuditInput, RotationRecordInput } from './types';

export function auditActivities(deps: ActivityDeps) {
  async function recordAudit(input: AuditInput): Promise<{ id: number }> {
    const entry = await appendAudit(deps.pool, {
      actor: input.actor,
      action: input.action,
      subject: input.subject,
      details: input.details,
      idempotencyKey: input.idempotencyKey,
    });
    return { id: Number(entry.id) };
  }

  async function recordRotation(input: RotationRecordInput): Promise<void> {
    await upsertRotation(deps.pool, input);
  }

  return { recordAudit, recordRotation };
}
