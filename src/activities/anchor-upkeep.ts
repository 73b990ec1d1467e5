/**
 * Signed anchors expire (7 days by default) and a pinned verifier fails closed on an expired one
 * (issue 12 point 1): the anchor must be re-signed before that, whatever else happens. This is
 * the activity a Temporal Schedule runs (`rotor anchor schedule create`): it re-signs the current
 * anchor as a new version when it expires within `withinSeconds`, and otherwise changes nothing.
 */
import { renewAnchor } from './anchor-root';
import { DEFAULT_ANCHOR_LIFETIME_SECONDS } from './anchor-signing';
import type { ActivityDeps } from './deps';

export interface AnchorUpkeepInput {
  identity: string;
  /** Re-sign when the current anchor expires sooner than this. */
  withinSeconds: number;
}

export interface AnchorUpkeepResult {
  version: number;
  published: boolean;
  expiresAt: string | null;
}

export function anchorUpkeepActivities(deps: ActivityDeps) {
  async function renewAnchorIfDue(input: AnchorUpkeepInput): Promise<AnchorUpkeepResult> {
    const result = await renewAnchor(deps.pool, deps.custodian, input.identity, {
      withinSeconds: input.withinSeconds,
      lifetimeSeconds: deps.settings.anchorLifetimeSeconds ?? DEFAULT_ANCHOR_LIFETIME_SECONDS,
    });
    return {
      version: result.version,
      published: result.published,
      expiresAt: result.expiresAt?.toISOString() ?? null,
    };
  }
  return { renewAnchorIfDue };
}
