/**
 * Runbook step 2 (t=5m): every active manifest of the old key gets its re-issued twin (spec 3.8:
 * new manifest_id, previous_manifest_id, new issued_at, attestation dropped), signed by the new key.
 * A v0.2 manifest's twin is a new COSE_Sign1; a v0.1 manifest's twin is a v0.2 COSE_Sign1 too
 * (the migration) unless the policy's reissueAs is "same".
 *
 * Idempotent by construction: a batch's twins and the old manifests' new status commit in one
 * transaction, a UNIQUE index on previous_manifest_id allows one twin per manifest, and the cursor
 * in the heartbeat only ever names committed work. A retry skips nothing and doubles nothing.
 * Signing the next batch overlaps with writing the previous one.
 */
import { errorMessage } from '../errors';
import { ManifestError, type ReissueAs, reissueStored } from '../manifest';
import type { Signer } from '../manifest/signer';
import { inTransaction } from '../store/db';
import type { TwinRow } from '../store/manifests';
import { countManifests, insertTwins, pageManifests, setStatus } from '../store/manifests';
import { type ActivityDeps, activityContext, signerForKey } from './deps';
import type { CountInput, ResignChunkInput, ResignChunkResult } from './types';

/** Postgres writes one batch while this thread signs the next; two in flight keep both cores busy. */
const WRITES_IN_FLIGHT = 2;

interface Heartbeat {
  cursor: string | null;
  resigned: number;
  failed: { manifestId: string; reason: string }[];
}

interface SignedBatch {
  twins: TwinRow[];
  failed: { manifestId: string; reason: string }[];
  lastId: string;
}

async function signBatch(
  page: { manifestId: string; text: string | null; envelope: Uint8Array | null }[],
  signer: Signer,
  now: Date,
  reissueAs: ReissueAs,
): Promise<SignedBatch> {
  const failed: SignedBatch['failed'] = [];
  // issued_at is written with whole seconds; the column holds the same instant.
  const issuedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const results = await Promise.all(
    page.map(async (m): Promise<TwinRow | undefined> => {
      try {
        // v0.2 envelopes stay v0.2; v0.1 documents become v0.2 unless the policy says "same".
        const twin = await reissueStored(m, signer, { now, reissueAs, source: `manifest ${m.manifestId}` });
        const row = {
          manifestId: twin.manifestId,
          previousManifestId: m.manifestId,
          keyId: signer.keyId,
          issuedAt,
        };
        return twin.envelope !== undefined
          ? { ...row, envelope: twin.envelope }
          : { ...row, text: twin.text! };
      } catch (err) {
        // Only the manifest's own content makes it unresignable; a signer or HSM failure is the
        // step's, and fails it so it is retried rather than leaving manifests behind.
        if (!(err instanceof ManifestError)) throw err;
        failed.push({ manifestId: m.manifestId, reason: errorMessage(err) });
        return undefined;
      }
    }),
  );
  return {
    twins: results.filter((t): t is NonNullable<typeof t> => t !== undefined),
    failed,
    lastId: page[page.length - 1]!.manifestId,
  };
}

export function resignActivities(deps: ActivityDeps) {
  async function countManifestsOf(input: CountInput): Promise<number> {
    return countManifests(deps.pool, {
      keyId: input.keyId,
      status: input.status,
      withoutSuccessor: input.withoutSuccessor,
    });
  }

  async function resignChunk(input: ResignChunkInput): Promise<ResignChunkResult> {
    const ctx = activityContext();
    const resumed = ctx?.info.heartbeatDetails as Heartbeat | undefined;
    const progress: Heartbeat = resumed ?? { cursor: input.afterManifestId, resigned: 0, failed: [] };
    const signer = await signerForKey(deps, input.toKeyId);
    if (signer.keyId !== input.toKeyId) {
      throw new Error(`custodian returned key ${signer.keyId} for ${input.toKeyId}`);
    }
    // Twins of revoked manifests (the compromise path) keep the originals' status; otherwise the
    // originals become `superseded`, the state revocation later picks them up from.
    const supersede = input.status === 'active';
    const withoutSuccessor = input.status === 'revoked';

    let examined = 0;
    let readCursor = progress.cursor;
    // Batches being written, oldest first. The heartbeat's cursor advances only as the oldest
    // commits, so it always names a committed prefix even with several writes in flight.
    const inFlight: { batch: SignedBatch; written: Promise<void> }[] = [];
    const settleOldest = async () => {
      const { batch, written } = inFlight.shift()!;
      await written;
      progress.cursor = batch.lastId;
      progress.resigned += batch.twins.length;
      progress.failed.push(...batch.failed);
      ctx?.heartbeat(progress);
    };
    try {
      while (examined < input.limit) {
        const page = await pageManifests(deps.pool, {
          keyId: input.fromKeyId,
          status: input.status,
          afterManifestId: readCursor,
          limit: Math.min(input.batchSize, input.limit - examined),
          withoutSuccessor,
        });
        if (page.length === 0) break;
        examined += page.length;
        readCursor = page[page.length - 1]!.manifestId;
        const batch = await signBatch(page, signer, new Date(), input.reissueAs ?? '0.2');
        if (inFlight.length >= WRITES_IN_FLIGHT) await settleOldest();
        const written = inTransaction(deps.pool, async (client) => {
          await insertTwins(client, batch.twins);
          if (supersede)
            await setStatus(
              client,
              batch.twins.map((t) => t.previousManifestId),
              'superseded',
            );
        });
        // Observed at once so a failed write is not an unhandled rejection while the next batch
        // signs; settleOldest still throws it.
        written.catch(() => {});
        inFlight.push({ batch, written });
      }
      while (inFlight.length > 0) await settleOldest();
    } finally {
      // On failure, let the other writes finish before the retry reads the store.
      await Promise.allSettled(inFlight.map((w) => w.written));
    }
    const remaining =
      progress.cursor === null && examined === 0
        ? 0
        : await countManifests(deps.pool, {
            keyId: input.fromKeyId,
            status: input.status,
            afterManifestId: progress.cursor,
            withoutSuccessor,
          });
    return { resigned: progress.resigned, failed: progress.failed, cursor: progress.cursor, remaining };
  }

  return { resignChunk, countManifests: countManifestsOf };
}
