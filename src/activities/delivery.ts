/**
 * The runbook's "deploy new manifests before updating verifiers", in the safe order: the rotation
 * calls `releaseDelivery` once the verifier adoption gate passed for the anchor that trusts the
 * new key, and from then on `rotor serve` hands each agent its twin. A compromise releases at once
 * (the old key is already distrusted); a rollback releases the old key's successors and withdraws
 * the new key. Deployment systems that push rather than let agents fetch are told through the
 * identity's outbound webhook: batched, retried, HMAC-signed.
 */
import { errorMessage } from '../errors';
import { SIGNATURE_HEADER, signWebhook } from '../http/webhook-signature';
import { getWebhook, recordBatch, releaseKey, sentBatches, twinsPage, withdrawKey } from '../store/delivery';
import { countManifests } from '../store/manifests';
import { type ActivityDeps, activityContext } from './deps';

export interface ReleaseDeliveryInput {
  identity: string;
  keyId: string;
  /** The anchor version whose adoption released the key; null for a compromise or a rollback. */
  anchorVersion: number | null;
  workflowId: string;
  reason: string;
  /** Keys whose twins are no longer handed out (a rolled-back new key). */
  withdrawKeyIds?: string[];
}

export interface ReleaseDeliveryResult {
  releasedAt: string;
  /** Active twins of the key now deliverable. */
  twins: number;
  /** Webhook batches: none configured → null. */
  webhook: { batches: number; sent: number; failed: number } | null;
}

/** Attempts per webhook batch inside one activity attempt, and the pause before each retry. */
const WEBHOOK_ATTEMPTS = 5;
const WEBHOOK_BACKOFF_MS = [500, 1000, 2000, 4000];

export function deliveryActivities(deps: ActivityDeps) {
  async function releaseDelivery(input: ReleaseDeliveryInput): Promise<ReleaseDeliveryResult> {
    for (const k of input.withdrawKeyIds ?? []) await withdrawKey(deps.pool, k);
    const release = await releaseKey(deps.pool, input);
    const twins = await countManifests(deps.pool, { keyId: input.keyId, status: 'active' });
    const webhook = await sendWebhook(input, release.releasedAt);
    return { releasedAt: release.releasedAt.toISOString(), twins, webhook };
  }

  async function sendWebhook(
    input: ReleaseDeliveryInput,
    releasedAt: Date,
  ): Promise<ReleaseDeliveryResult['webhook']> {
    const hook = await getWebhook(deps.pool, input.identity);
    if (!hook) return null;
    const done = await sentBatches(deps.pool, input.keyId);
    let batches = 0;
    let sent = done.size;
    let failed = 0;
    const base = deps.settings.publicUrl?.replace(/\/+$/, '');
    for (let batchNo = 0; ; batchNo++) {
      const rows = await twinsPage(deps.pool, input.keyId, batchNo * hook.batchSize, hook.batchSize);
      if (rows.length === 0) break;
      batches++;
      activityContext()?.heartbeat({ batchNo });
      if (done.has(batchNo)) continue;
      const body = JSON.stringify({
        type: 'manifests.released',
        identity: input.identity,
        key_id: input.keyId,
        anchor_version: input.anchorVersion,
        released_at: releasedAt.toISOString(),
        batch: batchNo + 1,
        agents: rows.map((r) => ({
          agent_id: r.agentId,
          manifest_id: r.manifestId,
          ...(base ? { manifest_url: `${base}/v1/agents/${encodeURIComponent(r.agentId)}/manifest` } : {}),
        })),
      });
      const outcome = await postBatch(hook.url, hook.secret, body, `${input.keyId}:${batchNo}`);
      await recordBatch(deps.pool, {
        keyId: input.keyId,
        batchNo,
        identity: input.identity,
        agents: rows.length,
        status: outcome.ok ? 'sent' : 'failed',
        attempts: outcome.attempts,
        httpStatus: outcome.status,
        lastError: outcome.error,
      });
      if (outcome.ok) sent++;
      else {
        failed++;
        deps.log?.(
          `delivery webhook for ${input.identity}: batch ${batchNo + 1} not delivered after ${outcome.attempts} attempt(s): ${outcome.error}`,
        );
      }
    }
    return { batches, sent, failed };
  }

  return { releaseDelivery };
}

interface BatchOutcome {
  ok: boolean;
  attempts: number;
  status: number | null;
  error: string | null;
}

async function postBatch(
  url: string,
  secret: string,
  body: string,
  deliveryId: string,
): Promise<BatchOutcome> {
  let status: number | null = null;
  let error: string | null = null;
  for (let attempt = 1; attempt <= WEBHOOK_ATTEMPTS; attempt++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'Rotor-Delivery-Id': deliveryId,
          [SIGNATURE_HEADER]: signWebhook(secret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(10_000),
      });
      await res.body?.cancel();
      status = res.status;
      if (res.ok) return { ok: true, attempts: attempt, status, error: null };
      error = `answered ${res.status}`;
      // A 4xx other than timeout/too-many is the receiver refusing the batch: retrying won't help.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        return { ok: false, attempts: attempt, status, error };
      }
    } catch (err) {
      error = errorMessage((err as { cause?: unknown }).cause ?? err);
    }
    if (attempt < WEBHOOK_ATTEMPTS) {
      activityContext()?.heartbeat({ deliveryId, attempt });
      await new Promise((r) => setTimeout(r, WEBHOOK_BACKOFF_MS[attempt - 1]));
    }
  }
  return { ok: false, attempts: WEBHOOK_ATTEMPTS, status, error };
}
