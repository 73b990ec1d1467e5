/**
 * Runbook step 5 (t=5m), and every later change of which key signs: the registry's key states and
 * a new trust anchor version, in ONE Postgres transaction, compare-and-set on the anchor version.
 *
 * Why one transaction: "old key retiring, new key active, anchor published" as separate writes
 * leaves a window where the registry and the served anchor disagree, and a retried first attempt
 * could commit an older anchor after a newer one. Here a switch either lands whole on the version
 * it expected, or finds that very switch already committed (an earlier attempt of it: success,
 * `changed: false`), or changes nothing and fails for good (someone else moved the anchor).
 * Public keys come from the registry, never from the workflow.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { inTransaction } from '../store/db';
import { requireKey, transitionKey } from '../store/keys';
import { currentTrustAnchor, publishTrustAnchor } from '../store/trust-anchors';
import { anchorSigningFor, DEFAULT_ANCHOR_LIFETIME_SECONDS } from './anchor-signing';
import type { ActivityDeps } from './deps';
import { reissueStragglers } from './resign';
import type { SwitchKeysInput, SwitchKeysResult } from './types';

export function publishAnchorActivities(deps: ActivityDeps) {
  async function switchKeys(input: SwitchKeysInput): Promise<SwitchKeysResult> {
    // No orphans: an anchor that makes a new key active while the old one retires is published
    // only once every manifest of the old key imported since the re-sign pass has its twin too
    // (or is declined, with its reason). Each twin commits in its own batch transaction before
    // the switch; a retried switch finds nothing left to do.
    const stragglers = { resigned: 0, declined: 0 };
    for (const k of input.anchorKeys) {
      if (k.status !== 'retiring' || k.keyId === input.activeKeyId) continue;
      const r = await reissueStragglers(deps, {
        fromKeyId: k.keyId,
        toKeyId: input.activeKeyId,
        reissueAs: input.reissueAs ?? '0.2',
      });
      stragglers.resigned += r.resigned;
      stragglers.declined += r.declined;
    }
    const counted = stragglers.resigned + stragglers.declined > 0 ? { stragglers } : {};
    await deps.failpoint?.reach('switchKeys:before-transaction');
    return inTransaction(deps.pool, async (client) => {
      // The same lock publishTrustAnchor takes: the version read here is the one it builds on.
      await client.query("SELECT pg_advisory_xact_lock(hashtextextended('rotor.trust_anchor:' || $1, 0))", [
        input.identity,
      ]);
      const current = await currentTrustAnchor(client, input.identity);
      const at = current?.version ?? 0;
      const keys = [];
      for (const k of input.anchorKeys) {
        const record = await requireKey(client, k.keyId);
        keys.push({
          keyId: record.keyId,
          publicKey: record.publicKey,
          validFrom: record.activatedAt ?? record.createdAt,
          status: k.status,
          validUntil: k.validUntil ?? null,
        });
      }
      if (at !== input.expectedAnchorVersion) {
        const states = await Promise.all(input.transitions.map((t) => requireKey(client, t.keyId)));
        const sameKeys =
          current !== null &&
          current.document.active_key_id === `sha256:${input.activeKeyId}` &&
          JSON.stringify(current.document.keys.map((k) => [k.key_id, k.status])) ===
            JSON.stringify(input.anchorKeys.map((k) => [`sha256:${k.keyId}`, k.status]));
        const sameStates = states.every((s, i) => s.state === input.transitions[i]!.to);
        if (sameKeys && sameStates && at === input.expectedAnchorVersion + 1) {
          return { version: at, publishedAt: current!.publishedAt.toISOString(), changed: false, ...counted };
        }
        throw ApplicationFailure.nonRetryable(
          `trust anchor of ${input.identity} is at version ${at}, this switch expected ${input.expectedAnchorVersion}: another publisher moved it; nothing was changed`,
          'AnchorVersionConflict',
        );
      }
      // The outgoing key steps down before the incoming one steps up: one active key per identity.
      for (const t of input.transitions) await transitionKey(client, t.keyId, t.to);
      // Key validity dates may have moved with the transitions (activated_at): read them again.
      for (const [i, k] of keys.entries()) {
        const record = await requireKey(client, k.keyId);
        keys[i] = { ...k, validFrom: record.activatedAt ?? record.createdAt };
      }
      // A routine rotation's anchor is co-signed by the outgoing key (listed `retiring`); a
      // compromise's anchor does not list the old key, so it never co-signs.
      const signing = await anchorSigningFor(client, deps.custodian, input.identity, {
        lifetimeSeconds: deps.settings.anchorLifetimeSeconds ?? DEFAULT_ANCHOR_LIFETIME_SECONDS,
        coSignKeyIds: input.anchorKeys.filter((k) => k.status === 'retiring').map((k) => k.keyId),
      });
      const published = await publishTrustAnchor(
        client,
        input.identity,
        { activeKeyId: input.activeKeyId, keys },
        signing,
      );
      return {
        version: published.version,
        publishedAt: published.publishedAt.toISOString(),
        changed: published.published,
        ...counted,
      };
    });
  }
  return { switchKeys };
}
