/**
 * Signing the CRL's header (issue 12, point 2; README "The CRL's signed header"): after every
 * change of the served CRL (each revoke batch commit in revoke.ts, `rotor crl compact`, an
 * identity's first revocation key) and, with no change, before the header's `next_update` (the
 * anchor upkeep schedule, anchor-upkeep.ts). Only holders of a custodian sign: the worker and the
 * CLI's key commands; `rotor serve` holds no keys and only serves what is stored here.
 *
 * Soundness under concurrent commits: count, hash and seq come from one REPEATABLE READ snapshot
 * (crlDigest), and the served body is a function of the head (migration 080), so a header names
 * exactly one body. Two signers racing sign the same or different seqs; each row is keyed by
 * (identity, seq) and serve hands out the header for the seq a verifier asks for (the CRL-Head of
 * the body it holds), or the newest with the body's current head beside it, so a body is never
 * paired with the header of another seq. A change committed after the snapshot is signed by the
 * signer its own commit runs.
 */
import { type CrlMetaPayload, signCrlMeta } from '../manifest';
import { type CrlDigest, crlDigest, latestCrlMeta, storeCrlMeta } from '../store/crl-meta';
import type { Pool } from '../store/db';
import { activeKey, type KeyRecord, listKeys } from '../store/keys';
import { crlHead } from '../store/revocations';
import { type CustodianFor, signerOf } from './anchor-signing';

export { DEFAULT_CRL_META_LIFETIME_SECONDS } from '../config';

export interface CrlMetaOptions {
  /** Only this identity's header; default: every identity with an active revocation key. */
  identity?: string;
  lifetimeSeconds: number;
  /** Also re-sign an up-to-date header whose next_update is sooner than this (upkeep). */
  renewWithinSeconds?: number;
}

export interface CrlMetaOutcome {
  identity: string;
  seq: number;
  records: number;
  sha256: string;
  nextUpdate: Date;
  /** false: the stored header was current and not due. */
  signed: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Signs a header for each identity whose newest one is missing, describes an older head than the
 * CRL's, or is due for renewal; others are left. The body is read and hashed once per call, and
 * only when some identity needs it.
 */
export async function signCrlHeaders(
  pool: Pool,
  custodianFor: CustodianFor,
  options: CrlMetaOptions,
): Promise<CrlMetaOutcome[]> {
  const keys: KeyRecord[] = [];
  if (options.identity !== undefined) {
    const key = await activeKey(pool, options.identity, 'revocation');
    if (key) keys.push(key);
  } else {
    keys.push(...(await listKeys(pool, { role: 'revocation', state: 'active' })));
  }
  if (keys.length === 0) return [];
  const { head } = await crlHead(pool);
  let digest: CrlDigest | undefined;
  const outcomes: CrlMetaOutcome[] = [];
  for (const key of keys) {
    const latest = await latestCrlMeta(pool, key.identity);
    const nowMs = Date.now();
    const due =
      !latest ||
      latest.seq < head ||
      latest.nextUpdate.getTime() - nowMs < (options.renewWithinSeconds ?? 0) * 1000 ||
      latest.nextUpdate.getTime() <= nowMs;
    if (!due) {
      outcomes.push({ ...outcomeOf(latest), signed: false });
      continue;
    }
    digest ??= await crlDigest(pool);
    // A racing signer already stored a newer body's header: that one stands.
    if (latest && latest.seq > digest.seq) {
      outcomes.push({ ...outcomeOf(latest), signed: false });
      continue;
    }
    const issuedMs = nowMs;
    const payload: CrlMetaPayload = {
      identity: key.identity,
      seq: digest.seq,
      records: digest.records,
      sha256: digest.sha256,
      issued_at: iso(issuedMs),
      next_update: iso(issuedMs + options.lifetimeSeconds * 1000),
    };
    const signer = await signerOf(custodianFor, key);
    const jws = await signCrlMeta(payload, signer);
    const stored = {
      identity: key.identity,
      seq: digest.seq,
      records: digest.records,
      sha256: digest.sha256,
      issuedAt: new Date(issuedMs),
      nextUpdate: new Date(issuedMs + options.lifetimeSeconds * 1000),
      signerKeyId: key.keyId,
      jws,
    };
    await storeCrlMeta(pool, stored);
    outcomes.push({ ...outcomeOf(stored), signed: true });
  }
  return outcomes;
}

function outcomeOf(m: { identity: string; seq: number; records: number; sha256: string; nextUpdate: Date }) {
  return { identity: m.identity, seq: m.seq, records: m.records, sha256: m.sha256, nextUpdate: m.nextUpdate };
}
