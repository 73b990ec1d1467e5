/**
 * Runbook step 5 (t=5m): a new trust anchor version listing the given keys, one of them active.
 * Public keys come from the registry, never from the workflow.
 */
import { requireKey } from '../store/keys';
import { publishTrustAnchor } from '../store/trust-anchors';
import { anchorSigningFor, DEFAULT_ANCHOR_LIFETIME_SECONDS } from './anchor-signing';
import type { ActivityDeps } from './deps';
import type { PublishAnchorInput, PublishAnchorResult } from './types';

export function publishAnchorActivities(deps: ActivityDeps) {
  async function publishAnchor(input: PublishAnchorInput): Promise<PublishAnchorResult> {
    const keys = [];
    for (const k of input.keys) {
      const record = await requireKey(deps.pool, k.keyId);
      keys.push({
        keyId: record.keyId,
        publicKey: record.publicKey,
        validFrom: record.activatedAt ?? record.createdAt,
        status: k.status,
        validUntil: k.validUntil ?? null,
      });
    }
    // A routine rotation's anchor is co-signed by the outgoing key (listed `retiring`); a
    // compromise's anchor does not list the old key, so it never co-signs.
    const signing = await anchorSigningFor(deps.pool, deps.custodian, input.identity, {
      lifetimeSeconds: deps.settings.anchorLifetimeSeconds ?? DEFAULT_ANCHOR_LIFETIME_SECONDS,
      coSignKeyIds: input.keys.filter((k) => k.status === 'retiring').map((k) => k.keyId),
    });
    const published = await publishTrustAnchor(
      deps.pool,
      input.identity,
      { activeKeyId: input.activeKeyId, keys },
      signing,
    );
    return { version: published.version, publishedAt: published.publishedAt.toISOString() };
  }
  return { publishAnchor };
}
