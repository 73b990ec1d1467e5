/**
 * Runbook steps 3 and 4 (t=35m): one revocation record per manifest of the old key, in the
 * reference SDK's FileCRL line format, signed with the NEW key; the CRL published.
 *
 * Idempotent: records and the manifests' `revoked` status commit together; a manifest already
 * revoked is not selected again, and the CRL keeps the first record per manifest_id.
 */
import { signRevocation } from '../manifest';
import type { Signer } from '../manifest/signer';
import { appendAudit } from '../store/audit';
import { inTransaction } from '../store/db';
import { recordDeclined } from '../store/declined';
import { activeKey, requireKey } from '../store/keys';
import { countManifests, pageManifests, setStatus } from '../store/manifests';
import { appendRevocations, countRevocations, publishCrlToFile } from '../store/revocations';
import { type ActivityDeps, activityContext, signCrlHeadersAfterChange, signerForKey } from './deps';
import { reissueStragglers, runOf } from './resign';

/**
 * Records are signed by the identity's revocation key (ADR-0007: the revoking authority, not the
 * manifest issuer), which outlives signing keys and is listed in every signed anchor: a verifier
 * still holding the pre-compromise anchor trusts a compromise's revocations, and one SDK
 * `FileCRL(trusted_signer_key=…)` checks the CRL across rotations. An identity set up before
 * revocation keys existed falls back to the new signing key, as before.
 */
async function revocationSigner(deps: ActivityDeps, oldKeyId: string, fallbackKeyId: string) {
  const { identity } = await requireKey(deps.pool, oldKeyId);
  const authority = await activeKey(deps.pool, identity, 'revocation');
  return signerForKey(deps, authority?.keyId ?? fallbackKeyId);
}

import type { RevokeChunkInput, RevokeChunkResult } from './types';

/** One signed revocation record per manifest id, all revoked at the same instant, in the FileCRL line format. */
async function signedRecords(deps: ActivityDeps, signer: Signer, manifestIds: string[], reason: string) {
  const revokedAt = new Date();
  return Promise.all(
    manifestIds.map(async (manifestId) => {
      const signed = await signRevocation(
        { manifestId, reason, revokedBy: deps.settings.revokedBy, revokedAt },
        signer,
      );
      return { manifestId, line: signed.line, signerKeyId: signer.keyId, revokedAt: signed.record.revokedAt };
    }),
  );
}

/**
 * An escalation (a rotation that turned into a compromise part-way) may already have re-issued,
 * during the overlap, manifests of the old key that arrived after the trusted cut-off: whoever
 * holds the stolen key could have signed them, and their twins carry the new key's signature.
 * Those twins are revoked with the old key's manifests, and their originals are recorded as
 * declined (`stored-after-cutoff`, the code a compromise's own re-sign gives them), so they never
 * get another twin. The compromise rule is the same as for a compromise rotation's re-sign
 * (README, "Verify before trust").
 */
async function revokeUntrustedTwins(
  deps: ActivityDeps,
  signer: Signer,
  input: { oldKeyId: string; storedFrom: Date; reason: string },
): Promise<number> {
  const run = runOf();
  let revoked = 0;
  for (;;) {
    const { rows } = await deps.pool.query<{ twin_id: string; original_id: string; stored_at: Date }>(
      `SELECT t.manifest_id AS twin_id, o.manifest_id AS original_id, o.stored_at
         FROM manifests o JOIN manifests t ON t.previous_manifest_id = o.manifest_id
        WHERE o.key_id = $1 AND o.stored_at >= $2 AND t.status <> 'revoked'
        ORDER BY t.manifest_id LIMIT 500`,
      [input.oldKeyId, input.storedFrom],
    );
    if (rows.length === 0) return revoked;
    const records = await signedRecords(
      deps,
      signer,
      rows.map((r) => r.twin_id),
      input.reason,
    );
    await inTransaction(deps.pool, async (client) => {
      await appendRevocations(client, records);
      await setStatus(
        client,
        rows.map((r) => r.twin_id),
        'revoked',
      );
      const declined = rows.map((r) => ({
        manifestId: r.original_id,
        keyId: input.oldKeyId,
        code: 'stored-after-cutoff',
        reason: `stored ${r.stored_at.toISOString()}, not before the trusted cut-off ${input.storedFrom.toISOString()}; its twin ${r.twin_id} was revoked on escalation`,
      }));
      await recordDeclined(client, run, declined);
      await appendAudit(client, {
        actor: 'rotor',
        action: 'rotation.untrusted-twins-revoked',
        subject: run.workflowId,
        details: { runId: run.runId, oldKeyId: input.oldKeyId, twins: rows.map((r) => r.twin_id) },
      });
    });
    // The served CRL changed: its signed header follows (crl-meta.ts).
    await signCrlHeadersAfterChange(deps);
    revoked += rows.length;
  }
}

export function revokeActivities(deps: ActivityDeps) {
  async function revokeChunk(input: RevokeChunkInput): Promise<RevokeChunkResult> {
    const ctx = activityContext();
    const signer = await revocationSigner(deps, input.oldKeyId, input.signingKeyId);
    // No orphans: before revoking the superseded, a manifest of the old key imported after the
    // re-sign pass gets its twin (or is declined with its reason) and so is revoked with the rest.
    // A manifest with no twin is never revoked here; in a compromise every active one is.
    const stragglers =
      input.status === 'superseded'
        ? await reissueStragglers(deps, {
            fromKeyId: input.oldKeyId,
            toKeyId: input.signingKeyId,
            reissueAs: input.reissueAs ?? '0.2',
          })
        : { resigned: 0, declined: 0 };
    const untrustedTwins = input.distrustTwinsStoredFrom
      ? await revokeUntrustedTwins(deps, signer, {
          oldKeyId: input.oldKeyId,
          storedFrom: new Date(input.distrustTwinsStoredFrom),
          reason: input.reason,
        })
      : 0;
    let revoked = 0;
    // Revoked manifests leave the selection anyway; the cursor keeps each page from walking the
    // index entries of rows revoked earlier (dead until vacuumed), which made paging quadratic.
    let cursor = (ctx?.info.heartbeatDetails as { cursor?: string } | undefined)?.cursor ?? null;
    while (revoked < input.limit) {
      const page = await pageManifests(deps.pool, {
        keyId: input.oldKeyId,
        status: input.status,
        afterManifestId: cursor,
        limit: Math.min(input.batchSize, input.limit - revoked),
      });
      if (page.length === 0) break;
      const records = await signedRecords(
        deps,
        signer,
        page.map((m) => m.manifestId),
        input.reason,
      );
      await inTransaction(deps.pool, async (client) => {
        await appendRevocations(client, records);
        await deps.failpoint?.reach('revokeChunk:in-transaction');
        await setStatus(
          client,
          page.map((m) => m.manifestId),
          'revoked',
        );
      });
      // The served CRL changed: its signed header follows (crl-meta.ts).
      await signCrlHeadersAfterChange(deps);
      revoked += page.length;
      cursor = page[page.length - 1]!.manifestId;
      ctx?.heartbeat({ revoked, cursor });
    }
    // An attempt that died between a commit and its header: the retry's header (a no-op when current).
    await signCrlHeadersAfterChange(deps);
    const remaining = await countManifests(deps.pool, { keyId: input.oldKeyId, status: input.status });
    if (remaining === 0 && deps.settings.crlFile) {
      await publishCrlToFile(deps.pool, deps.settings.crlFile, {
        ...(deps.settings.crlFileIdentity ? { identity: deps.settings.crlFileIdentity } : {}),
      });
    }
    return {
      revoked,
      remaining,
      crlSize: await countRevocations(deps.pool),
      ...(stragglers.resigned + stragglers.declined > 0 ? { stragglers } : {}),
      ...(untrustedTwins > 0 ? { untrustedTwins } : {}),
    };
  }

  return { revokeChunk };
}
