/**
 * The two gates between the adoption of the new anchor and the revocation of the old key's
 * manifests (runbook "Zero-downtime overlap", t=30m..35m):
 *
 * - pickup: every agent whose manifest was re-issued has fetched its twin from `rotor serve`
 *   (store/delivery.ts). Agents never seen fetching do not hold the gate once the delivery cache
 *   lifetime plus a margin has passed since the release (they may be pushed to through the
 *   webhook, or fetch rarely); agents seen fetching but still on their original hold it until
 *   the policy's bound. An identity that does not use rotor's delivery (no credential, no
 *   webhook) passes at once.
 * - analysis: rejections that verifiers report at check-in, over a sliding window, of new-key
 *   manifests or of old-key manifests that are not revoked yet. Above a count or a rate, the
 *   rotation pauses (and, if the policy says so, rolls back) before anything is revoked.
 *
 * `watchPreRevocation` polls both inside one heartbeating activity and reports back at the end of
 * its slice (`policy.gateSliceSeconds`), or at once when the analysis trips: the history grows per
 * slice, not per poll, and holds counts plus a sample (SAMPLE_SIZE), never the fleet's list.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SAMPLE_SIZE } from '../domain';
import { agentsBehind, getRelease, getWebhook, pickupCounts } from '../store/delivery';
import { resultsSince } from '../store/verification-results';
import { type ActivityDeps, activityContext } from './deps';

export interface PreRevocationInput {
  identity: string;
  oldKeyId: string;
  newKeyId: string;
  /** Report back by then (epoch ms), or earlier when the analysis trips. */
  untilMs: number;
  /** Report back as soon as the pickup gate is satisfied (set once revocation is due). */
  returnWhenPickedUp: boolean;
  pollSeconds: number;
  pickup: { enabled: boolean; deliveryMaxAgeSeconds: number; marginSeconds: number };
  analysis: {
    enabled: boolean;
    /** Count nothing before this (epoch ms): a plain resume after a trip starts the count afresh. */
    sinceMs?: number;
    windowSeconds: number;
    maxRejections: number;
    maxRejectionRate: number;
    minResults: number;
  };
}

export interface PickupGateCheck {
  /** 'not-in-use': no delivery credential or webhook exists; 'disabled' by policy. */
  mode: 'fetch' | 'not-in-use' | 'disabled';
  satisfied: boolean;
  twins: number;
  pickedUp: number;
  seenNotPickedUp: number;
  neverSeen: number;
  /** Whether never-seen agents still hold the gate (within the cache lifetime + margin). */
  neverSeenWaiting: boolean;
  /** Agents seen fetching but still on their original, at most SAMPLE_SIZE, for the alert. */
  behind: string[];
  detail: string;
}

export interface AnalysisGateCheck {
  enabled: boolean;
  tripped: boolean;
  windowSeconds: number;
  /** Results in the window for the two keys. */
  results: number;
  rejections: number;
  rate: number;
  /** Rejections in the window by key role and reason, e.g. {"new/unknown_key": 12}. */
  byReason: Record<string, number>;
  detail: string;
}

export interface PreRevocationCheck {
  checkedAt: string;
  pickup: PickupGateCheck;
  analysis: AnalysisGateCheck;
}

function shortList(ids: string[], total: number): string {
  return total <= 5 ? ids.slice(0, 5).join(', ') : `${ids.slice(0, 5).join(', ')} and ${total - 5} more`;
}

export function preRevocationActivities(deps: ActivityDeps) {
  async function deliveryInUse(identity: string): Promise<boolean> {
    const { rows } = await deps.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM delivery_credentials WHERE revoked_at IS NULL',
    );
    if (Number(rows[0]!.n) > 0) return true;
    return (await getWebhook(deps.pool, identity)) !== null;
  }

  async function checkPickup(input: PreRevocationInput): Promise<PickupGateCheck> {
    const empty = {
      twins: 0,
      pickedUp: 0,
      seenNotPickedUp: 0,
      neverSeen: 0,
      neverSeenWaiting: false,
      behind: [],
    };
    if (!input.pickup.enabled) {
      return {
        mode: 'disabled',
        satisfied: true,
        ...empty,
        detail: 'the pickup gate is off (policy pickupGate)',
      };
    }
    if (!(await deliveryInUse(input.identity))) {
      return {
        mode: 'not-in-use',
        satisfied: true,
        ...empty,
        detail:
          'rotor does not deliver manifests here (no delivery credential or webhook): no pickup to wait for',
      };
    }
    const counts = await pickupCounts(deps.pool, input.newKeyId);
    const release = await getRelease(deps.pool, input.newKeyId);
    const releasedAt = release?.state === 'released' ? release.releasedAt.getTime() : Date.now();
    const neverSeenUntil =
      releasedAt + (input.pickup.deliveryMaxAgeSeconds + input.pickup.marginSeconds) * 1000;
    const neverSeenWaiting = counts.neverSeen > 0 && Date.now() < neverSeenUntil;
    const satisfied = counts.seenNotPickedUp === 0 && !neverSeenWaiting;
    const behind = satisfied ? [] : await agentsBehind(deps.pool, input.newKeyId, SAMPLE_SIZE);
    const parts = [`${counts.pickedUp} of ${counts.twins} agent(s) picked up their re-issued manifest`];
    if (counts.seenNotPickedUp > 0)
      parts.push(`${counts.seenNotPickedUp} seen fetching but still on the original`);
    if (counts.neverSeen > 0) {
      parts.push(
        `${counts.neverSeen} never seen fetching (${neverSeenWaiting ? `waited for until ${new Date(neverSeenUntil).toISOString()}` : 'no longer waited for: delivery cache lifetime + margin passed'})`,
      );
    }
    return {
      mode: 'fetch',
      satisfied,
      ...counts,
      neverSeenWaiting,
      behind,
      detail: `${parts.join('; ')}${behind.length ? `; behind: ${shortList(behind, counts.seenNotPickedUp)}` : ''}`,
    };
  }

  async function checkAnalysis(input: PreRevocationInput): Promise<AnalysisGateCheck> {
    const a = input.analysis;
    const base = { enabled: a.enabled, windowSeconds: a.windowSeconds };
    if (!a.enabled) {
      return {
        ...base,
        tripped: false,
        results: 0,
        rejections: 0,
        rate: 0,
        byReason: {},
        detail: 'analysis is off',
      };
    }
    // Counted from the release on: before it agents were handed their originals, and verifiers
    // still catching up with the new anchor are the adoption gate's business.
    const release = await getRelease(deps.pool, input.newKeyId);
    const since = new Date(
      Math.max(
        Date.now() - a.windowSeconds * 1000,
        release?.state === 'released' ? release.releasedAt.getTime() : 0,
        a.sinceMs ?? 0,
      ),
    );
    const { byKey } = await resultsSince(deps.pool, input.identity, since);
    const byReason: Record<string, number> = {};
    let results = 0;
    let rejections = 0;
    for (const [role, keyId] of [
      ['new', input.newKeyId],
      ['old', input.oldKeyId],
    ] as const) {
      const k = byKey[keyId];
      if (!k) continue;
      results += k.valid;
      for (const [reason, n] of Object.entries(k.rejected)) {
        results += n;
        // Before revocation no old-key manifest is revoked by this rotation, and an expired one
        // is the manifest's own doing: neither is the rotation's fault.
        if (reason === 'expired' || (role === 'old' && reason === 'revoked')) continue;
        rejections += n;
        byReason[`${role}/${reason}`] = (byReason[`${role}/${reason}`] ?? 0) + n;
      }
    }
    const rate = results > 0 ? rejections / results : 0;
    const overCount = rejections > a.maxRejections;
    const overRate = results >= a.minResults && rate > a.maxRejectionRate;
    const tripped = overCount || overRate;
    const figures = `${rejections} rejection(s) of ${results} result(s) in the last ${a.windowSeconds} s (${(rate * 100).toFixed(1)}%; ${
      Object.entries(byReason)
        .map(([r, n]) => `${r} ${n}`)
        .join(', ') || 'none'
    })`;
    return {
      ...base,
      tripped,
      results,
      rejections,
      rate,
      byReason,
      detail: tripped
        ? `analysis gate tripped: ${figures}; limits: more than ${a.maxRejections} rejections, or a rate above ${(a.maxRejectionRate * 100).toFixed(1)}% over at least ${a.minResults} results`
        : `analysis: ${figures}`,
    };
  }

  async function checkPreRevocation(input: PreRevocationInput): Promise<PreRevocationCheck> {
    const [pickup, analysis] = await Promise.all([checkPickup(input), checkAnalysis(input)]);
    return { checkedAt: new Date().toISOString(), pickup, analysis };
  }

  /**
   * Polls both gates every `pollSeconds` until `untilMs`, the analysis trips, or (once revocation
   * is due) the pickup gate is satisfied, heartbeating each poll (a lost worker is noticed within
   * the heartbeat timeout; a cancelled watch stops at its next poll). Returns the last check.
   */
  async function watchPreRevocation(input: PreRevocationInput): Promise<PreRevocationCheck> {
    const ctx = activityContext();
    for (;;) {
      const check = await checkPreRevocation(input);
      ctx?.heartbeat({ pickedUp: check.pickup.pickedUp, rejections: check.analysis.rejections });
      const left = input.untilMs - Date.now();
      if (check.analysis.tripped || left <= 0) return check;
      if (input.returnWhenPickedUp && check.pickup.satisfied) return check;
      const wait = Math.min(input.pollSeconds * 1000, left);
      // ctx.sleep rejects as soon as the workflow cancels the watch (an interrupt or a force).
      if (ctx) await ctx.sleep(wait);
      else await sleep(wait);
    }
  }

  return { checkPreRevocation, watchPreRevocation };
}
