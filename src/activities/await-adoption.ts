/**
 * Runbook step 5's wait (until t=30m) and step 6's condition: verifiers have adopted the new
 * anchor, and have accepted manifests signed by the new key. Observed from check-ins; where no
 * verifier checks in, adoption is the anchor's cache lifetime having passed since publication.
 *
 * `watchGate` polls inside one activity and heartbeats each poll, so a 24-hour wait adds a few
 * history events per report-back slice instead of per poll, and every result is counts plus a
 * sample: the full list of verifiers stays in the verifier store.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SAMPLE_SIZE, type VerifierAdoption } from '../domain';
import { gateVerifiers } from '../store/verifiers';
import { type ActivityDeps, activityContext } from './deps';
import type { AcceptanceInput, AdoptionInput, GateCheck, GateWatchInput } from './types';

function shortList(ids: string[], total: number): string {
  return total <= 5 ? ids.slice(0, 5).join(', ') : `${ids.slice(0, 5).join(', ')} and ${total - 5} more`;
}

/** Counts and a sample, those behind first: the size of a result does not grow with the fleet. */
function summarise(verifiers: VerifierAdoption[], isBehind: (v: VerifierAdoption) => boolean) {
  const behind = verifiers.filter(isBehind);
  const ahead = verifiers.filter((v) => !isBehind(v));
  return {
    live: verifiers.length,
    behindCount: behind.length,
    behind: behind.slice(0, SAMPLE_SIZE).map((v) => v.verifierId),
    verifiers: [...behind, ...ahead].slice(0, SAMPLE_SIZE),
  };
}

export function adoptionActivities(deps: ActivityDeps) {
  /**
   * The verifiers a gate of `identity` waits for: every registered one not retired, whether it
   * checks in or has gone quiet (silence is "behind", never "gone": issue 12 point 4), and
   * unregistered ones while they check in within the liveness window.
   */
  const gateSet = (identity: string, withinSeconds: number, keyId?: string) =>
    gateVerifiers(deps.pool, { identity, withinSeconds, ...(keyId ? { keyId } : {}) });

  async function checkAdoption(input: AdoptionInput): Promise<GateCheck> {
    const checkedAt = new Date().toISOString();
    const live = await gateSet(input.identity, input.livenessSeconds);
    if (live.length === 0) {
      const until = new Date(
        Date.parse(input.publishedAt) + (input.anchorMaxAgeSeconds + input.marginSeconds) * 1000,
      );
      const satisfied = Date.now() >= until.getTime();
      return {
        satisfied,
        mode: 'cache-lifetime',
        live: 0,
        behindCount: 0,
        verifiers: [],
        behind: [],
        checkedAt,
        detail: satisfied
          ? `no verifier checks in; the anchor's cache lifetime passed at ${until.toISOString()}`
          : `no verifier checks in; waiting out the anchor's cache lifetime until ${until.toISOString()}`,
      };
    }
    const all: VerifierAdoption[] = live.map((v) => ({
      verifierId: v.verifierId,
      anchorVersion: v.anchorVersion,
      lastSeen: v.lastSeenAt.toISOString(),
      adopted: v.anchorVersion !== null && v.anchorVersion >= input.version,
      acceptedNewKey: false,
    }));
    const s = summarise(all, (v) => !v.adopted);
    return {
      satisfied: s.behindCount === 0,
      mode: 'check-in',
      ...s,
      checkedAt,
      detail:
        s.behindCount === 0
          ? `all ${s.live} live verifier(s) hold anchor version ${input.version}`
          : `${s.behindCount} of ${s.live} live verifier(s) do not hold anchor version ${input.version} yet: ${shortList(s.behind, s.behindCount)}`,
    };
  }

  async function checkAcceptance(input: AcceptanceInput): Promise<GateCheck> {
    const checkedAt = new Date().toISOString();
    const live = await gateSet(input.identity, input.livenessSeconds, input.keyId);
    if (live.length === 0) {
      return {
        satisfied: true,
        mode: 'cache-lifetime',
        live: 0,
        behindCount: 0,
        verifiers: [],
        behind: [],
        checkedAt,
        detail: 'no verifier checks in; the overlap window has closed',
      };
    }
    const all: VerifierAdoption[] = live.map((v) => ({
      verifierId: v.verifierId,
      anchorVersion: v.anchorVersion,
      lastSeen: v.lastSeenAt.toISOString(),
      adopted: true,
      acceptedNewKey: v.accepted,
    }));
    const s = summarise(all, (v) => !v.acceptedNewKey);
    return {
      satisfied: s.behindCount === 0,
      mode: 'check-in',
      ...s,
      checkedAt,
      detail:
        s.behindCount === 0
          ? `all ${s.live} live verifier(s) have accepted a manifest signed by ${input.keyId.slice(0, 12)}…`
          : `${s.behindCount} live verifier(s) have not yet accepted a manifest signed by the new key: ${shortList(s.behind, s.behindCount)}`,
    };
  }

  /**
   * Polls one gate every `pollSeconds` until it is satisfied or `untilMs` passes, heartbeating
   * each poll (a lost worker is noticed within the heartbeat timeout; a cancelled watch stops at
   * its next poll). Returns the last check.
   */
  async function watchGate(input: GateWatchInput): Promise<GateCheck> {
    const ctx = activityContext();
    for (;;) {
      const check = input.gate === 'adoption' ? await checkAdoption(input) : await checkAcceptance(input);
      ctx?.heartbeat({ behind: check.behindCount, live: check.live });
      const left = input.untilMs - Date.now();
      if (check.satisfied || left <= 0) return check;
      const wait = Math.min(input.pollSeconds * 1000, left);
      // ctx.sleep rejects as soon as the workflow cancels the watch (an interrupt or escalation).
      if (ctx) await ctx.sleep(wait);
      else await sleep(wait);
    }
  }

  return { checkAdoption, checkAcceptance, watchGate };
}
