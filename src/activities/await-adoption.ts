/**
 * Runbook step 5's wait (until t=30m) and step 6's condition: verifiers have adopted the new
 * anchor, and have accepted manifests signed by the new key. Observed from check-ins; where no
 * verifier checks in, adoption is the anchor's cache lifetime having passed since publication.
 */
import { liveVerifiers, liveVerifiersNotAccepted } from '../store/verifiers';
import type { VerifierAdoption } from '../workflows/rotation-api';
import type { ActivityDeps } from './deps';
import type { AcceptanceInput, AdoptionInput, GateCheck } from './types';

function shortList(ids: string[]): string {
  return ids.length <= 5 ? ids.join(', ') : `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more`;
}

export function adoptionActivities(deps: ActivityDeps) {
  /** Verifiers of `identity` that checked in within the liveness window. */
  const liveVerifiersOf = async (identity: string, withinSeconds: number) =>
    (await liveVerifiers(deps.pool, { withinSeconds })).filter((v) => v.identity === identity);

  async function checkAdoption(input: AdoptionInput): Promise<GateCheck> {
    const live = await liveVerifiersOf(input.identity, input.livenessSeconds);
    if (live.length === 0) {
      const until = new Date(
        Date.parse(input.publishedAt) + (input.anchorMaxAgeSeconds + input.marginSeconds) * 1000,
      );
      const satisfied = Date.now() >= until.getTime();
      return {
        satisfied,
        mode: 'cache-lifetime',
        verifiers: [],
        behind: [],
        detail: satisfied
          ? `no verifier checks in; the anchor's cache lifetime passed at ${until.toISOString()}`
          : `no verifier checks in; waiting out the anchor's cache lifetime until ${until.toISOString()}`,
      };
    }
    const verifiers: VerifierAdoption[] = live.map((v) => ({
      verifierId: v.verifierId,
      anchorVersion: v.anchorVersion,
      lastSeen: v.lastSeenAt.toISOString(),
      adopted: v.anchorVersion !== null && v.anchorVersion >= input.version,
      acceptedNewKey: false,
    }));
    const behind = verifiers.filter((v) => !v.adopted).map((v) => v.verifierId);
    return {
      satisfied: behind.length === 0,
      mode: 'check-in',
      verifiers,
      behind,
      detail:
        behind.length === 0
          ? `all ${verifiers.length} live verifier(s) hold anchor version ${input.version}`
          : `${behind.length} of ${verifiers.length} live verifier(s) do not hold anchor version ${input.version} yet: ${shortList(behind)}`,
    };
  }

  async function checkAcceptance(input: AcceptanceInput): Promise<GateCheck> {
    const live = await liveVerifiersOf(input.identity, input.livenessSeconds);
    const notAccepted = new Set(
      (
        await liveVerifiersNotAccepted(deps.pool, {
          withinSeconds: input.livenessSeconds,
          keyId: input.keyId,
        })
      ).map((v) => v.verifierId),
    );
    if (live.length === 0) {
      return {
        satisfied: true,
        mode: 'cache-lifetime',
        verifiers: [],
        behind: [],
        detail: 'no verifier checks in; the overlap window has closed',
      };
    }
    const verifiers: VerifierAdoption[] = live.map((v) => ({
      verifierId: v.verifierId,
      anchorVersion: v.anchorVersion,
      lastSeen: v.lastSeenAt.toISOString(),
      adopted: true,
      acceptedNewKey: !notAccepted.has(v.verifierId),
    }));
    const behind = verifiers.filter((v) => !v.acceptedNewKey).map((v) => v.verifierId);
    return {
      satisfied: behind.length === 0,
      mode: 'check-in',
      verifiers,
      behind,
      detail:
        behind.length === 0
          ? `all ${verifiers.length} live verifier(s) have accepted a manifest signed by ${input.keyId.slice(0, 12)}…`
          : `${behind.length} live verifier(s) have not yet accepted a manifest signed by the new key: ${shortList(behind)}`,
    };
  }

  return { checkAdoption, checkAcceptance };
}
