/**
 * The runbook's one-hour timeline, shrunk to a demo's length while keeping its proportions:
 * re-sign at 1/6, adoption deadline at 1/2, revocation at 7/12, decommission at the end
 * (5m, 30m, 35m and 60m of an hour). The anchor's cache lifetime shrinks with it, so verifiers
 * really do have to refetch it within the window.
 */
import type { RotationPolicy } from '../workflows/policy';

export const DEFAULT_TIMELINE_SECONDS = 60;
/** Below this the steps fall on the same second and a verifier's poll interval no longer fits. */
export const MIN_TIMELINE_SECONDS = 12;
export const MAX_TIMELINE_SECONDS = 3600;

export type DemoPolicy = Partial<RotationPolicy> & { anchorMaxAgeSeconds: number };

export function demoPolicy(totalSeconds: number): DemoPolicy {
  const at = (fraction: number) => Math.max(1, Math.round(totalSeconds * fraction));
  const anchorMaxAgeSeconds = Math.max(1, Math.round(totalSeconds / 12));
  return {
    resignAtSeconds: at(1 / 6),
    adoptBySeconds: at(1 / 2),
    revokeAtSeconds: at(7 / 12),
    decommissionAtSeconds: totalSeconds,
    anchorMaxAgeSeconds,
    adoptionMarginSeconds: anchorMaxAgeSeconds,
    pollSeconds: Math.max(1, Math.round(totalSeconds / 30)),
    verifierLivenessSeconds: Math.max(10, Math.round(totalSeconds / 2)),
    // The demo's key was made a moment ago; the 90-day rule would skip a scheduled rotation.
    minKeyAgeDays: 0,
    allowSoftwareCustodian: true,
  };
}
