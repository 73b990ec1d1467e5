/**
 * Why a verifier rejected a manifest, as one of a few stable reasons: what verifiers count and
 * report at check-in, what `rotor serve` exports as metric labels, and what the rotation's analysis
 * gate reads. The verifier core (verify.ts) says why in words; this maps those words to a reason.
 */
import type { Verdict } from './verify';

export const REJECTION_REASONS = [
  'unknown_key',
  'bad_signature',
  'revoked',
  'expired',
  'malformed',
  'no_anchor',
  'other',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export function isRejectionReason(value: string): value is RejectionReason {
  return (REJECTION_REASONS as readonly string[]).includes(value);
}

/** The reason of a non-VALID verdict; null for VALID. */
export function rejectionReason(verdict: Verdict): RejectionReason | null {
  switch (verdict.result) {
    case 'VALID':
      return null;
    case 'REVOKED':
      return 'revoked';
    case 'EXPIRED':
      return 'expired';
    default:
      break;
  }
  const why = verdict.reason;
  if (/is not a trusted key/.test(why)) return 'unknown_key';
  if (/signature does not verify/.test(why)) return 'bad_signature';
  // The reference verifier's words for holding no usable anchor: none trusted yet, or the last one expired.
  if (/no trusted? anchor held|trusted anchor \(version \d+\) expired at/.test(why)) return 'no_anchor';
  if (
    /unsupported|not a JSON|is missing|not a string|malformed|unsigned|downgrade|no key_id|invalid|JSON/i.test(
      why,
    )
  )
    return 'malformed';
  return 'other';
}
