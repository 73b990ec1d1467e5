/**
 * Runbook step 6's audit record, kept for every phase: the hash-chained audit log, and the
 * rotations table that `rotor rotate list` and the 90-day policy read. Each rotation phase's entry
 * is also checkpointed: the head signed by the identity's anchor root keys (issue 12 point 6,
 * src/manifest/audit-checkpoint.ts), so a consistent rewrite of the chain is detected.
 */
import { signCheckpoint } from '../manifest/audit-checkpoint';
import type { Signer } from '../manifest/signer';
import { currentRootSet } from '../store/anchor-roots';
import { type AuditEntry, appendAudit, recordCheckpoint } from '../store/audit';
import { upsertRotation } from '../store/rotations';
import { signerOf } from './anchor-signing';
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
    const identity = (input.details as { identity?: unknown } | undefined)?.identity;
    if (input.action.startsWith('rotation.') && typeof identity === 'string')
      await checkpoint(identity, entry);
    return { id: Number(entry.id) };
  }

  /** Signs the head at `entry` with the identity's current root set; none yet: nothing to sign with. */
  async function checkpoint(identity: string, entry: AuditEntry): Promise<void> {
    const root = await currentRootSet(deps.pool, identity);
    if (!root) return;
    const signers: Signer[] = [];
    for (const k of root.keys.filter((key) => key.state === 'active').slice(0, root.threshold))
      signers.push(await signerOf(deps.custodian, k));
    const claim = {
      identity,
      auditId: Number(entry.id),
      auditHash: entry.hash,
      issuedAt: new Date().toISOString(),
    };
    await recordCheckpoint(deps.pool, {
      ...claim,
      rootVersion: root.rootVersion,
      signatures: await signCheckpoint(claim, signers),
    });
  }

  async function recordRotation(input: RotationRecordInput): Promise<void> {
    await upsertRotation(deps.pool, input);
  }

  return { recordAudit, recordRotation };
}
