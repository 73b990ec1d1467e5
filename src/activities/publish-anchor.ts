/**
 * Runbook step 5 (t=5m): a new trust anchor version listing the given keys, one of them active.
 * Public keys come from the registry, never from the workflow.
 */
import { requireKey } from '../store/keys';
import { publishTrustAnchor } from '../store/trust-anchors';
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
    const published = await publishTrustAnchor(deps.pool, input.identity, {
      activeKeyId: input.activeKeyId,
      keys,
    });
    return { version: published.version, publishedAt: published.publishedAt.toISOString() };
  }
  return { publishAnchor };
}
