/**
 * Signed anchors expire (7 days by default) and a pinned verifier fails closed on an expired one
 * (issue 12 point 1): the anchor must be re-signed before that, whatever else happens. This is
 * the activity a Temporal Schedule runs (`rotor anchor schedule create`): it re-signs the current
 * anchor as a new version when it expires within `withinSeconds`, and otherwise changes nothing.
 *
 * The same run keeps the identity's signed CRL header alive (issue 12 point 2, crl-meta.ts): a
 * verifier refuses a header past its `next_update` (a frozen CRL), so the header is re-signed when
 * less than half its lifetime is left, or at once when it describes an older CRL than the one
 * served (a change whose own signing failed). The schedule must therefore look more often than
 * half the header lifetime (`rotor anchor schedule create`, default every 15 minutes).
 */
import { renewAnchor } from './anchor-root';
import { DEFAULT_ANCHOR_LIFETIME_SECONDS } from './anchor-signing';
import { DEFAULT_CRL_META_LIFETIME_SECONDS, signCrlHeaders } from './crl-meta';
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
  /** The CRL head the identity's signed CRL header describes (null: no revocation key). */
  crlSeq?: number | null;
  /** Whether this run signed a new CRL header, and until when it holds. */
  crlSigned?: boolean;
  crlNextUpdate?: string | null;
}

export function anchorUpkeepActivities(deps: ActivityDeps) {
  async function renewAnchorIfDue(input: AnchorUpkeepInput): Promise<AnchorUpkeepResult> {
    const result = await renewAnchor(deps.pool, deps.custodian, input.identity, {
      withinSeconds: input.withinSeconds,
      lifetimeSeconds: deps.settings.anchorLifetimeSeconds ?? DEFAULT_ANCHOR_LIFETIME_SECONDS,
    });
    const lifetimeSeconds = deps.settings.crlMetaLifetimeSeconds ?? DEFAULT_CRL_META_LIFETIME_SECONDS;
    const [crl] = await signCrlHeaders(deps.pool, deps.custodian, {
      identity: input.identity,
      lifetimeSeconds,
      renewWithinSeconds: Math.floor(lifetimeSeconds / 2),
    });
    return {
      version: result.version,
      published: result.published,
      expiresAt: result.expiresAt?.toISOString() ?? null,
      crlSeq: crl?.seq ?? null,
      crlSigned: crl?.signed ?? false,
      crlNextUpdate: crl?.nextUpdate.toISOString() ?? null,
    };
  }
  return { renewAnchorIfDue };
}
