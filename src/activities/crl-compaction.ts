/**
 * Compacting the served CRL (ADR-0007, Consequences; README "CRL deltas"): the records of manifests
 * that expired more than a margin ago leave the served list (they stay in the archive and the
 * audit log, src/store/revocations.ts), then every identity's CRL header is signed again, since the
 * body it describes changed. `rotor crl compact` runs it once from the CLI; the CRL compaction
 * schedule (`rotor crl schedule create`, src/workflows/crl-compaction.ts) runs it on a Temporal
 * Schedule in the worker, so no cron is needed.
 */
import { DEFAULT_CRL_META_LIFETIME_SECONDS } from '../config';
import type { Pool } from '../store/db';
import { compactCrl } from '../store/revocations';
import type { CustodianFor } from './anchor-signing';
import { signCrlHeaders } from './crl-meta';
import type { ActivityDeps } from './deps';

export interface CrlCompactionInput {
  /** How long past `expires_at` a record stays served: longer than any verifier's clock lags. */
  marginSeconds: number;
}

export interface CrlCompactionResult {
  compacted: number;
  head: number;
  horizon: number;
  /** Records the served list holds afterwards. */
  served: number;
  headers: { identity: string; seq: number; signed: boolean; next_update: string }[];
}

export async function compactAndSignCrl(
  pool: Pool,
  custodianFor: CustodianFor,
  options: CrlCompactionInput & { lifetimeSeconds: number; actor: string },
): Promise<CrlCompactionResult> {
  const compacted = await compactCrl(pool, { marginSeconds: options.marginSeconds, actor: options.actor });
  // Every identity's header describes the one shared body: each is signed again (a no-op for a
  // header already at the head, e.g. when nothing was compacted).
  const headers = await signCrlHeaders(pool, custodianFor, { lifetimeSeconds: options.lifetimeSeconds });
  return {
    ...compacted,
    headers: headers.map((h) => ({
      identity: h.identity,
      seq: h.seq,
      signed: h.signed,
      next_update: h.nextUpdate.toISOString(),
    })),
  };
}

export function crlCompactionActivities(deps: ActivityDeps) {
  async function compactCrlOnSchedule(input: CrlCompactionInput): Promise<CrlCompactionResult> {
    return compactAndSignCrl(deps.pool, deps.custodian, {
      marginSeconds: input.marginSeconds,
      lifetimeSeconds: deps.settings.crlMetaLifetimeSeconds ?? DEFAULT_CRL_META_LIFETIME_SECONDS,
      actor: 'rotor crl schedule',
    });
  }
  return { compactCrlOnSchedule };
}
