/**
 * The demo's two reference verifiers: each runs the sidecar loop (refresh anchor and CRL within
 * their cache lifetimes, verify, check in) over a sample of the store, so the rotation's adoption
 * and acceptance gates see real check-ins. A verifier is shown the manifests an agent could
 * present to it: those signed by a key it trusts, current (active) or not yet revoked
 * (superseded), a rolling page of each per cycle.
 */
import { errorMessage } from '../errors';
import type { RootSet, VerificationResult } from '../manifest';
import type { Pool } from '../store/db';
import { type ManifestStatus, pageManifests } from '../store/manifests';
import { type ManifestInput, ReferenceVerifier } from '../verifier/reference-verifier';

export type VerdictTally = Record<VerificationResult, number>;

export interface DemoVerifier {
  verifier: ReferenceVerifier;
  tally: VerdictTally;
  /** The last failed refresh or check-in, for the status display; cleared by a clean cycle. */
  lastError?: string;
  /** One reason a manifest did not verify VALID, kept to explain a non-zero INVALID count. */
  lastRejection?: string;
}

export interface DemoVerifiersOptions {
  pool: Pool;
  baseUrl: string;
  identity: string;
  /** Each verifier's own check-in credential (rotor verifier register), by id. */
  credentials: Record<string, string>;
  /** The pinned anchor root. */
  root: RootSet;
  ids: string[];
  intervalMs: number;
  /** Manifests per key and status per cycle. */
  pageSize?: number;
}

export interface DemoVerifiers {
  verifiers: DemoVerifier[];
  /** Ends every loop after its cycle in progress. */
  stop(): Promise<void>;
}

const SAMPLED_STATUSES: ManifestStatus[] = ['active', 'superseded'];

export function startDemoVerifiers(options: DemoVerifiersOptions): DemoVerifiers {
  const pageSize = options.pageSize ?? 10;
  const loops: Promise<void>[] = [];
  let stopped = false;
  const verifiers = options.ids.map((id, i) => {
    const entry: DemoVerifier = {
      verifier: new ReferenceVerifier({
        id,
        baseUrl: options.baseUrl,
        identity: options.identity,
        checkInToken: options.credentials[id] ?? '',
        root: options.root,
      }),
      tally: { VALID: 0, INVALID: 0, REVOKED: 0, EXPIRED: 0 },
    };
    const cursors = new Map<string, string>();
    const sample = async (): Promise<ManifestInput[]> => {
      const texts: ManifestInput[] = [];
      for (const keyId of entry.verifier.trustedKeyIds) {
        for (const status of SAMPLED_STATUSES) {
          const where = `${keyId}/${status}`;
          let page = await pageManifests(options.pool, {
            keyId,
            status,
            afterManifestId: cursors.get(where) ?? null,
            limit: pageSize,
          });
          if (page.length === 0 && cursors.has(where)) {
            // Past the last one: start the round again from the first.
            page = await pageManifests(options.pool, { keyId, status, limit: pageSize });
          }
          if (page.length > 0) cursors.set(where, page.at(-1)!.manifestId);
          else cursors.delete(where);
          texts.push(...page.map((row) => row.envelope ?? row.text ?? ''));
        }
      }
      return texts;
    };
    let failed = false;
    // Staggered, so the two do not always refetch in the same instant.
    const startIn = (options.intervalMs * i) / options.ids.length;
    loops.push(
      new Promise<void>((resolve) => setTimeout(resolve, startIn)).then(async () => {
        if (stopped) return;
        await entry.verifier.runLoop({
          intervalMs: options.intervalMs,
          manifests: sample,
          onError: (err) => {
            failed = true;
            entry.lastError = errorMessage(err);
          },
          onCycle: (verdicts) => {
            for (const v of verdicts) {
              entry.tally[v.result]++;
              if (v.result !== 'VALID') entry.lastRejection = `${v.result}: ${v.reason}`;
            }
            if (!failed) entry.lastError = undefined;
            failed = false;
          },
        });
      }),
    );
    return entry;
  });
  return {
    verifiers,
    async stop() {
      stopped = true;
      await Promise.all(verifiers.map((v) => v.verifier.stop()));
      // Stopping: a verifier loop that failed has already reported through its own status.
      await Promise.all(loops.map((l) => l.catch(() => {})));
    },
  };
}
