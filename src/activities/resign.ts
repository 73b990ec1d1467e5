/**
 * docs/runbook-key-rotation.txt Step 2 (t=5m): every active manifest of the old key gets its
 * re-issued twin (docs/upstream/agent-manifest-spec-v0.2.md §3.8: new manifest_id,
 * previous_manifest_id, new issued_at, attestation dropped; §2.2: the original's log entry
 * carried as prior_transparency_log_entry), signed by the new key. A v0.2 manifest's twin is a new
 * COSE_Sign1 (src/manifest/cose-sign.ts); a v0.1 manifest's twin is a v0.2 COSE_Sign1 too (the
 * migration: upstream ended new v0.1 issuance on 2026-11-30, and a re-issue is an issuance) unless
 * the policy's reissueAs is "same". The recount of stragglers follows the same rule.
 *
 * Verify before trust: nothing is signed until `decideReissue` (src/manifest/reissue-policy.ts)
 * says so: the manifest's signature (v0.1's detached block, or v0.2's COSE_Sign1 over its
 * Sig_structure) verifies under the public key the registry holds for its key_id, that key is the one being rotated and belongs to the identity, the manifest is
 * schema-valid, not revoked, not expired, and leaves the twin the SDK's 1-hour window. Whatever
 * is declined goes to the `rotation_declined` table with its reason, in the same transaction as
 * the batch's twins; the workflow sees counts and a small sample only (bounded history).
 *
 * Idempotent by construction: a batch's twins, the old manifests' new status and the declined
 * rows commit in one transaction, a UNIQUE index on previous_manifest_id allows one twin per
 * manifest, and the cursor in the heartbeat only ever names committed work. A retry skips
 * nothing and doubles nothing. Signing the next batch overlaps with writing the previous one.
 */

import { SAMPLE_SIZE } from '../domain';
import type { RegistryKey, ReissueAs } from '../manifest';
import type { Signer } from '../manifest/signer';
import { appendAudit } from '../store/audit';
import type { Pool } from '../store/db';
import { inTransaction } from '../store/db';
import { recordDeclined } from '../store/declined';
import type { ManifestPageRow } from '../store/manifests';
import { countManifests, insertTwins, pageManifests, setStatus } from '../store/manifests';
import type { Queryable } from '../store/queryable';
import { type ActivityDeps, activityContext, signerForKey } from './deps';
import type { Failpoint } from './failpoint';
import type { SignedRows } from './reissue-batch';
import { signRowsOnPool } from './sign-pool';
import type { CountInput, ResignChunkInput, ResignChunkResult } from './types';

/** Postgres writes up to two batches while the sign pool verifies and signs the next. */
const WRITES_IN_FLIGHT = 2;

interface Heartbeat {
  cursor: string | null;
  resigned: number;
  declined: number;
  sample: { manifestId: string; reason: string }[];
  withLogEntry: number;
}

interface SignedBatch extends SignedRows {
  lastId: string;
}

/** Every key the registry holds (a small table): the decision's `lookupKey`. */
export async function loadRegistry(q: Queryable): Promise<Map<string, RegistryKey>> {
  const { rows } = await q.query<{ key_id: string; identity: string; public_key: Buffer }>(
    'SELECT key_id, identity, public_key FROM signing_keys',
  );
  return new Map(
    rows.map((r) => [
      r.key_id,
      { keyId: r.key_id, identity: r.identity, publicKey: new Uint8Array(r.public_key) },
    ]),
  );
}

/** When each of `ids` entered the CRL (absent: not revoked). */
async function revokedAt(q: Queryable, ids: string[]): Promise<Map<string, Date>> {
  const { rows } = await q.query<{ manifest_id: string; recorded_at: Date }>(
    'SELECT manifest_id, recorded_at FROM revocations WHERE manifest_id = ANY($1::text[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.manifest_id, r.recorded_at]));
}

export interface ReissuePass {
  pool: Pool;
  runId: string;
  workflowId: string;
  fromKeyId: string;
  signer: Signer;
  /** `active` normally; `revoked` in a compromise (re-issued after revocation). */
  status: 'active' | 'revoked';
  /** Compromise: only manifests stored before this are trusted. */
  trustedBefore?: Date;
  /** Compromise: a manifest revoked before this instant was revoked for its own reasons. */
  rotationStartedAt?: Date;
  /** The version a v0.1 original's twin gets (a v0.2 original's is always v0.2). */
  reissueAs: ReissueAs;
  /** Test-only (ROTOR_FAILPOINT); undefined in production. */
  failpoint?: Failpoint;
  /** Threads of the sign pool (ROTOR_SIGN_THREADS, the worker's settings); default one per core. */
  signThreads?: number;
}

/**
 * Verifies and signs one page on the sign pool (src/activities/sign-pool.ts): the facts the
 * decision needs are read here (the registry, and in a compromise which candidates were revoked
 * before the rotation for their own reasons), the CPU work runs on one thread per core.
 */
async function signBatch(
  pass: ReissuePass,
  registry: Map<string, RegistryKey>,
  page: ManifestPageRow[],
  now: Date,
): Promise<SignedBatch> {
  const identity = registry.get(pass.fromKeyId)?.identity;
  if (identity === undefined) throw new Error(`key ${pass.fromKeyId} is not in the key registry`);
  // In a compromise the candidates are revoked (by this rotation): one revoked earlier was
  // revoked for its own reasons and is not brought back.
  const revokedEarlier: string[] = [];
  if (pass.status === 'revoked' && pass.rotationStartedAt) {
    const crl = await revokedAt(
      pass.pool,
      page.map((m) => m.manifestId),
    );
    for (const [id, when] of crl)
      if (when.getTime() < pass.rotationStartedAt.getTime()) revokedEarlier.push(id);
  }
  const signed = await signRowsOnPool(
    page.map((m) => ({
      manifestId: m.manifestId,
      text: m.text,
      envelope: m.envelope,
      keyId: m.keyId,
      storedAt: m.storedAt,
    })),
    {
      registry: [...registry.values()],
      identity,
      fromKeyId: pass.fromKeyId,
      now,
      status: pass.status,
      revokedEarlier,
      ...(pass.trustedBefore ? { trustedBefore: pass.trustedBefore } : {}),
      reissueAs: pass.reissueAs,
    },
    pass.signer,
    pass.signThreads,
  );
  return { ...signed, lastId: page[page.length - 1]!.manifestId };
}

/**
 * One pass over the candidates after `cursor`, at most `limit` of them, batch by batch; reports
 * progress through `onCommitted` (the heartbeat) as each batch commits.
 */
export async function reissuePass(
  pass: ReissuePass,
  opts: {
    cursor: string | null;
    limit: number;
    batchSize: number;
    /** Skip manifests this run already declined (a recount, which starts from the beginning). */
    skipDeclined?: boolean;
    onCommitted?: (batch: SignedBatch) => void;
  },
): Promise<{ examined: number; cursor: string | null }> {
  const registry = await loadRegistry(pass.pool);
  // Twins of revoked manifests (the compromise path) keep the originals' status; otherwise the
  // originals become `superseded`, the state revocation later picks them up from.
  const supersede = pass.status === 'active';
  const withoutSuccessor = pass.status === 'revoked';
  let examined = 0;
  let readCursor = opts.cursor;
  let committed = opts.cursor;
  // Batches being written, oldest first. The cursor advances only as the oldest commits, so it
  // always names a committed prefix even with several writes in flight.
  const inFlight: { batch: SignedBatch; written: Promise<void> }[] = [];
  const settleOldest = async () => {
    const { batch, written } = inFlight.shift()!;
    await written;
    committed = batch.lastId;
    opts.onCommitted?.(batch);
  };
  try {
    const readPage = (after: string | null, limit: number) =>
      pageManifests(pass.pool, {
        keyId: pass.fromKeyId,
        status: pass.status,
        afterManifestId: after,
        limit,
        withoutSuccessor,
        ...(opts.skipDeclined ? { notDeclinedInRun: pass.runId } : {}),
      });
    let asked = Math.min(opts.batchSize, opts.limit);
    let next: Promise<ManifestPageRow[]> | undefined = asked > 0 ? readPage(readCursor, asked) : undefined;
    while (next) {
      const page = await next;
      next = undefined;
      if (page.length === 0) break;
      examined += page.length;
      readCursor = page[page.length - 1]!.manifestId;
      // The next page is read while this one is signed: pages are disjoint (keyset order after the
      // cursor), and the rows of batches in flight all sit at or before it.
      if (page.length === asked && examined < opts.limit) {
        asked = Math.min(opts.batchSize, opts.limit - examined);
        next = readPage(readCursor, asked);
        // Observed at once so a failed read is not an unhandled rejection while this batch signs.
        next.catch(() => {});
      }
      const batch = await signBatch(pass, registry, page, new Date());
      if (inFlight.length >= WRITES_IN_FLIGHT) await settleOldest();
      const written = inTransaction(pass.pool, async (client) => {
        await insertTwins(client, batch.twins);
        await pass.failpoint?.reach('resignChunk:in-transaction');
        if (supersede)
          await setStatus(
            client,
            batch.twins.map((t) => t.previousManifestId),
            'superseded',
          );
        const stored = await recordDeclined(
          client,
          { runId: pass.runId, workflowId: pass.workflowId },
          batch.declined,
        );
        // The audit log names every declined manifest with its reason, in the same transaction
        // (a retried batch finds its rows stored and writes no second entry).
        if (stored > 0)
          await appendAudit(client, {
            actor: 'rotor',
            action: 'rotation.declined',
            subject: pass.workflowId,
            details: {
              runId: pass.runId,
              fromKeyId: pass.fromKeyId,
              declined: batch.declined.map((d) => ({
                manifestId: d.manifestId,
                code: d.code,
                reason: d.reason,
              })),
            },
          });
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
  return { examined, cursor: committed };
}

/** The run this activity belongs to (rotation workflow ids repeat across rotations; run ids do not). */
export function runOf(workflowId?: string): { runId: string; workflowId: string } {
  const execution = activityContext()?.info.workflowExecution;
  const id = workflowId ?? execution?.workflowId ?? 'direct';
  return { runId: execution?.runId ?? id, workflowId: id };
}

/**
 * The recount (no orphans): manifests of `fromKeyId` still active with no twin and not declined
 * by this run, that is, imported after the re-sign pass went by, get their twins now. Runs
 * inside publish-anchor and revoke, so the workflow's sequence of commands stays the same.
 */
export async function reissueStragglers(
  deps: ActivityDeps,
  input: {
    workflowId?: string;
    fromKeyId: string;
    toKeyId: string;
    batchSize?: number;
    reissueAs: ReissueAs;
  },
): Promise<{ resigned: number; declined: number }> {
  const run = runOf(input.workflowId);
  const pending = await countManifests(deps.pool, {
    keyId: input.fromKeyId,
    status: 'active',
    notDeclinedInRun: run.runId,
  });
  if (pending === 0) return { resigned: 0, declined: 0 };
  const signer = await signerForKey(deps, input.toKeyId);
  let resigned = 0;
  let declined = 0;
  await reissuePass(
    {
      pool: deps.pool,
      ...run,
      fromKeyId: input.fromKeyId,
      signer,
      status: 'active',
      // The same rule as the re-sign pass: a straggler's twin is the version the policy gives.
      reissueAs: input.reissueAs,
    },
    {
      cursor: null,
      limit: Number.MAX_SAFE_INTEGER,
      batchSize: input.batchSize ?? 500,
      skipDeclined: true,
      onCommitted: (b) => {
        resigned += b.twins.length;
        declined += b.declined.length;
      },
    },
  );
  return { resigned, declined };
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
    const resumed = ctx?.info.heartbeatDetails as Partial<Heartbeat> | undefined;
    const progress: Heartbeat = {
      cursor: resumed?.cursor ?? input.afterManifestId,
      resigned: resumed?.resigned ?? 0,
      declined: resumed?.declined ?? 0,
      sample: resumed?.sample ?? [],
      withLogEntry: resumed?.withLogEntry ?? 0,
    };
    const signer = await signerForKey(deps, input.toKeyId);
    if (signer.keyId !== input.toKeyId) {
      throw new Error(`custodian returned key ${signer.keyId} for ${input.toKeyId}`);
    }
    const run = runOf(input.workflowId);
    const pass: ReissuePass = {
      pool: deps.pool,
      ...run,
      fromKeyId: input.fromKeyId,
      signer,
      status: input.status,
      // Absent in histories from before the field existed: the production default.
      reissueAs: input.reissueAs ?? '0.2',
      ...(deps.failpoint ? { failpoint: deps.failpoint } : {}),
      ...(deps.settings.signThreads !== undefined ? { signThreads: deps.settings.signThreads } : {}),
      ...(input.trustedBefore ? { trustedBefore: new Date(input.trustedBefore) } : {}),
      ...(input.rotationStartedAt ? { rotationStartedAt: new Date(input.rotationStartedAt) } : {}),
    };
    const { examined } = await reissuePass(pass, {
      cursor: progress.cursor,
      limit: input.limit,
      batchSize: input.batchSize,
      onCommitted: (batch) => {
        progress.cursor = batch.lastId;
        progress.resigned += batch.twins.length;
        progress.declined += batch.declined.length;
        progress.withLogEntry += batch.withLogEntry;
        for (const d of batch.declined) {
          if (progress.sample.length >= SAMPLE_SIZE) break;
          progress.sample.push({ manifestId: d.manifestId, reason: d.reason });
        }
        ctx?.heartbeat(progress);
      },
    });
    const remaining =
      progress.cursor === null && examined === 0
        ? 0
        : await countManifests(deps.pool, {
            keyId: input.fromKeyId,
            status: input.status,
            afterManifestId: progress.cursor,
            withoutSuccessor: input.status === 'revoked',
          });
    return {
      resigned: progress.resigned,
      failed: progress.sample,
      declinedCount: progress.declined,
      withPriorLogEntry: progress.withLogEntry,
      cursor: progress.cursor,
      remaining,
    };
  }

  return { resignChunk, countManifests: countManifestsOf };
}
