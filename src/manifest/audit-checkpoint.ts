/**
 * Audit checkpoints (issue 12, point 6): the audit log's head at a rotation phase, signed by a
 * threshold of the identity's anchor root keys. The hash chain alone detects an edit only by
 * someone who cannot recompute it; a database superuser can rewrite the chain consistently. A
 * checkpoint's root signatures come from the custodian (an HSM in production), so a rewrite of any
 * entry at or before a checkpointed one no longer matches that checkpoint's hash.
 *
 * The signed bytes are domain-separated lines, so a checkpoint signature can never be taken for a
 * signature over a manifest, an anchor or a revocation record. Pure: no I/O.
 */
import { RotorError } from '../errors';
import type { RootSet } from './anchor-jws';
import { verifyStrict } from './ed25519';
import { b64urlDecode, b64urlEncode } from './keys';
import type { Signer } from './signer';

const DOMAIN = 'rotor-audit-checkpoint/v1';
const HEX64 = /^[0-9a-f]{64}$/;

export interface AuditCheckpointClaim {
  identity: string;
  /** The audit entry the checkpoint covers (the head when it was signed). */
  auditId: number;
  /** That entry's chain hash. */
  auditHash: string;
  /** ISO 8601, when it was signed. */
  issuedAt: string;
}

export interface CheckpointSignature {
  kid: string;
  /** base64url Ed25519 signature over `checkpointSigningInput(claim)`. */
  sig: string;
}

export function checkpointSigningInput(claim: AuditCheckpointClaim): Uint8Array {
  if (!Number.isSafeInteger(claim.auditId) || claim.auditId < 1)
    throw new RotorError(`audit checkpoint: entry id ${claim.auditId} is not an entry`, 'AUDIT_CHECKPOINT');
  if (!HEX64.test(claim.auditHash))
    throw new RotorError(
      'audit checkpoint: the entry hash must be 64 lowercase hex digits',
      'AUDIT_CHECKPOINT',
    );
  if (/[\n\r]/.test(claim.identity) || /[\n\r]/.test(claim.issuedAt))
    throw new RotorError('audit checkpoint: identity and time must be single lines', 'AUDIT_CHECKPOINT');
  return Buffer.from(
    `${DOMAIN}\n${claim.identity}\n${claim.auditId}\n${claim.auditHash}\n${claim.issuedAt}`,
    'utf8',
  );
}

/** One signature per distinct signer (the identity's root keys). */
export async function signCheckpoint(
  claim: AuditCheckpointClaim,
  signers: Signer[],
): Promise<CheckpointSignature[]> {
  const input = checkpointSigningInput(claim);
  const out: CheckpointSignature[] = [];
  for (const s of signers) {
    if (out.some((o) => o.kid === s.keyId)) continue;
    out.push({ kid: s.keyId, sig: b64urlEncode(await s.sign(input)) });
  }
  return out;
}

/**
 * Null when at least `root.threshold` distinct pinned root keys signed the claim; otherwise why
 * not, in one line.
 */
export function checkpointProblem(
  claim: AuditCheckpointClaim,
  signatures: CheckpointSignature[],
  root: RootSet,
): string | null {
  let input: Uint8Array;
  try {
    input = checkpointSigningInput(claim);
  } catch (err) {
    return (err as Error).message;
  }
  const valid = new Set<string>();
  for (const s of signatures) {
    const key = root.keys.find((k) => k.kid === s.kid);
    if (!key || valid.has(s.kid)) continue;
    let sig: Uint8Array;
    try {
      sig = b64urlDecode(s.sig, 'checkpoint signature');
    } catch {
      // A malformed signature counts as no signature; the threshold decides.
      continue;
    }
    if (verifyStrict(key.publicKey, input, sig)) valid.add(s.kid);
  }
  return valid.size >= root.threshold
    ? null
    : `signed by ${valid.size} pinned root key(s), ${root.threshold} needed`;
}
