/**
 * The CPU half of the re-sign step, for one batch: read each stored copy, decide whether it may be
 * re-issued (`decideReissue`: strict signature check under the registry's key, schema, revocation,
 * cut-off, validity window; README "Verify before trust") and sign the twin of each one accepted.
 * Pure of I/O, so it runs either on the activity's thread or on a thread of the sign pool
 * (src/activities/sign-pool.ts): everything it needs arrives as plain data and a Signer.
 */
import { errorMessage } from '../errors';
import {
  decideReissue,
  isJsonObject,
  ManifestError,
  type ParsedStoredManifest,
  parseStoredCopy,
  type RegistryKey,
  type ReissueAs,
  reissueCoseEnvelope,
  reissueDocument,
  reissueV01RootAsCose,
  unreadableCode,
} from '../manifest';
import type { Signer } from '../manifest/signer';
import type { DeclinedRow } from '../store/declined';
import type { TwinRow } from '../store/manifests';

/** One candidate as read from the store. */
export interface BatchRow {
  manifestId: string;
  text: string | null;
  envelope: Uint8Array | null;
  keyId: string | null;
  storedAt: Date;
}

/** What the decision needs besides the manifest: structured-clone-able, so it crosses threads. */
export interface BatchFacts {
  /** Every key of the registry (a small table). */
  registry: RegistryKey[];
  /** The identity whose key is rotated. */
  identity: string;
  fromKeyId: string;
  /** The decision's clock (the twins' issued_at). */
  now: Date;
  /** `active` normally; `revoked` in a compromise. */
  status: 'active' | 'revoked';
  /** Compromise: the ids in this batch revoked before the rotation started (for their own reasons). */
  revokedEarlier: string[];
  trustedBefore?: Date;
  reissueAs: ReissueAs;
}

export interface SignedRows {
  twins: TwinRow[];
  declined: DeclinedRow[];
  withLogEntry: number;
}

/**
 * Signs the twin of a manifest `decideReissue` accepted, in the version the policy asks for.
 * Throws ManifestError when the manifest has no twin rotor can make (see `code`). The rotation's
 * batches and the offline `rotor manifest reissue` both re-issue through this one function.
 */
export async function signTwin(
  parsed: ParsedStoredManifest,
  reissueAs: ReissueAs,
  signer: Signer,
  now: Date,
  source: string,
): Promise<{ manifestId: string; copy: { text: string } | { envelope: Uint8Array }; withLogEntry: boolean }> {
  if (parsed.format === 'cose-v0.2') {
    const twin = await reissueCoseEnvelope(parsed.envelope, signer, { now, source });
    return { manifestId: twin.manifestId, copy: { envelope: twin.envelope }, withLogEntry: false };
  }
  if (reissueAs === '0.2') {
    // The migration, from the document decideReissue verified (a duplicate member was declined).
    const twin = await reissueV01RootAsCose(parsed.root, signer, { now, source });
    // The original's log entry becomes the twin's prior_transparency_log_entry (spec §2.2).
    const withLogEntry = isJsonObject(parsed.root.get('transparency_log_entry'));
    return { manifestId: twin.manifestId, copy: { envelope: twin.envelope }, withLogEntry };
  }
  const twin = await reissueDocument(parsed.doc, signer, { now, source });
  return {
    manifestId: twin.manifestId,
    copy: { text: twin.text },
    withLogEntry: Boolean(twin.priorTransparencyLogEntry),
  };
}

export async function signRows(rows: BatchRow[], facts: BatchFacts, signer: Signer): Promise<SignedRows> {
  const declined: DeclinedRow[] = [];
  const registry = new Map(facts.registry.map((k) => [k.keyId, k]));
  const revokedEarlier = new Set(facts.revokedEarlier);
  const now = facts.now;
  // issued_at is written with whole seconds; the column holds the same instant.
  const issuedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  let withLogEntry = 0;
  const results = await Promise.all(
    rows.map(async (m) => {
      const source = `manifest ${m.manifestId}`;
      let parsed: ParsedStoredManifest;
      try {
        parsed = parseStoredCopy(m, source);
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        declined.push({
          manifestId: m.manifestId,
          keyId: m.keyId,
          code: unreadableCode(err),
          reason: errorMessage(err),
        });
        return undefined;
      }
      const decision = decideReissue(parsed, {
        lookupKey: (k) => registry.get(k),
        identity: facts.identity,
        fromKeyId: facts.fromKeyId,
        now,
        revoked: facts.status === 'active' ? false : revokedEarlier.has(m.manifestId),
        ...(facts.trustedBefore ? { trustedBefore: facts.trustedBefore, storedAt: m.storedAt } : {}),
      });
      if (!decision.ok) {
        declined.push({
          manifestId: m.manifestId,
          keyId: m.keyId,
          code: decision.code,
          reason: decision.reason,
        });
        return undefined;
      }
      try {
        const twin = await signTwin(parsed, facts.reissueAs, signer, now, source);
        if (twin.withLogEntry) withLogEntry++;
        return {
          manifestId: twin.manifestId,
          previousManifestId: m.manifestId,
          keyId: signer.keyId,
          issuedAt,
          ...twin.copy,
        } satisfies TwinRow;
      } catch (err) {
        // Only the manifest's own content makes it unresignable; a signer or HSM failure is the
        // step's, and fails it so it is retried rather than leaving manifests behind.
        if (!(err instanceof ManifestError)) throw err;
        declined.push({
          manifestId: m.manifestId,
          keyId: m.keyId,
          // A v0.2 twin the spec defines no way to make (a SCITT receipt, a v0.1 member with no
          // v0.2 conversion) is the manifest's, not an unreadable copy.
          code: parsed.format === 'cose-v0.2' || facts.reissueAs === '0.2' ? 'unresignable' : 'unreadable',
          reason: errorMessage(err),
        });
        return undefined;
      }
    }),
  );
  return {
    twins: results.filter((t): t is NonNullable<typeof t> => t !== undefined),
    declined,
    withLogEntry,
  };
}
