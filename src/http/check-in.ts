/**
 * `POST /v1/verifiers/{id}/check-in`: a verifier reports the anchor version it holds, the key_ids
 * it trusts and its count of VALID results per key_id. The body is checked field by field;
 * unknown fields are refused rather than ignored, so a typo cannot pass as "no data".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isRejectionReason, REJECTION_REASONS } from '../manifest/rejection';
import { NO_KEY, type RejectionCounts } from '../store/verification-results';
import type { CheckIn } from '../store/verifiers';
import { isIdentityName, keyIdFrom } from './ids';
import { badRequest, HttpError } from './respond';

export const CHECK_IN_BODY_LIMIT = 64 * 1024;
const MAX_KEYS = 256;
const FIELDS = new Set([
  'anchor_version',
  'anchor_sha256',
  'identity',
  'trusted_key_ids',
  'valid_counts',
  'rejection_counts',
]);

export interface ParsedCheckIn extends Omit<CheckIn, 'anchorVersion'> {
  identity: string;
  /** As reported; a registered verifier's is derived from `anchorSha256` instead. */
  anchorVersion?: number;
  /** Whether the body named an identity (a registered verifier may only name its own). */
  identityGiven: boolean;
  /** key_id (or 'none') → reason → count since the verifier started. */
  rejectionCounts: RejectionCounts;
}

export function parseCheckIn(verifierId: string, body: unknown, defaultIdentity: string): ParsedCheckIn {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('the body must be a JSON object');
  }
  const fields = body as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!FIELDS.has(name)) throw badRequest(`unknown field ${JSON.stringify(name.slice(0, 64))}`);
  }
  const version = fields.anchor_version;
  if (
    version !== undefined &&
    (typeof version !== 'number' || !Number.isInteger(version) || version < 0 || version > 2 ** 31 - 1)
  ) {
    throw badRequest('anchor_version must be a non-negative integer');
  }
  const sha = fields.anchor_sha256;
  if (sha !== undefined && (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))) {
    throw badRequest('anchor_sha256 must be the lowercase hex SHA-256 of the signed anchor held (64 digits)');
  }
  if (version === undefined && sha === undefined) {
    throw badRequest("report the anchor held: anchor_sha256 (the signed anchor's SHA-256) or anchor_version");
  }
  let identity = defaultIdentity;
  if (fields.identity !== undefined) {
    if (!isIdentityName(fields.identity))
      throw badRequest('identity must be a name of letters, digits, . _ -');
    identity = fields.identity;
  }
  const trusted = fields.trusted_key_ids;
  if (!Array.isArray(trusted) || trusted.length > MAX_KEYS) {
    throw badRequest(`trusted_key_ids must be an array of at most ${MAX_KEYS} key_ids`);
  }
  const trustedKeyIds = [...new Set(trusted.map((k, i) => keyIdFrom(k, `trusted_key_ids[${i}]`)))];
  const counts = fields.valid_counts ?? {};
  if (typeof counts !== 'object' || counts === null || Array.isArray(counts)) {
    throw badRequest('valid_counts must be an object of key_id to count');
  }
  const entries = Object.entries(counts as Record<string, unknown>);
  if (entries.length > MAX_KEYS) throw badRequest(`valid_counts names more than ${MAX_KEYS} key_ids`);
  const validCounts: Record<string, number> = {};
  for (const [key, n] of entries) {
    const keyId = keyIdFrom(key, `valid_counts key ${JSON.stringify(key.slice(0, 80))}`);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw badRequest(`valid_counts[${JSON.stringify(keyId)}] must be a non-negative integer`);
    }
    if (keyId in validCounts) throw badRequest(`valid_counts names key_id ${keyId} twice`);
    validCounts[keyId] = n;
  }
  const rejectionCounts = parseRejections(fields.rejection_counts);
  return {
    verifierId,
    ...(version === undefined ? {} : { anchorVersion: version as number }),
    ...(sha === undefined ? {} : { anchorSha256: sha as string }),
    identity,
    identityGiven: fields.identity !== undefined,
    trustedKeyIds,
    validCounts,
    rejectionCounts,
  };
}

/** `rejection_counts`: `{ key_id or "none": { reason: count } }`, reasons from REJECTION_REASONS. */
function parseRejections(value: unknown): RejectionCounts {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('rejection_counts must be an object of key_id to {reason: count}');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_KEYS) throw badRequest(`rejection_counts names more than ${MAX_KEYS} key_ids`);
  const out: RejectionCounts = {};
  for (const [key, reasons] of entries) {
    const keyId =
      key === NO_KEY ? NO_KEY : keyIdFrom(key, `rejection_counts key ${JSON.stringify(key.slice(0, 80))}`);
    if (keyId in out) throw badRequest(`rejection_counts names key_id ${keyId} twice`);
    if (typeof reasons !== 'object' || reasons === null || Array.isArray(reasons)) {
      throw badRequest(`rejection_counts[${JSON.stringify(keyId)}] must be an object of reason to count`);
    }
    const counts: Record<string, number> = {};
    for (const [reason, n] of Object.entries(reasons as Record<string, unknown>)) {
      if (!isRejectionReason(reason)) {
        throw badRequest(
          `rejection_counts[${JSON.stringify(keyId)}] has unknown reason ${JSON.stringify(reason.slice(0, 40))}: expected one of ${REJECTION_REASONS.join(', ')}`,
        );
      }
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
        throw badRequest(
          `rejection_counts[${JSON.stringify(keyId)}].${reason} must be a non-negative integer`,
        );
      }
      counts[reason] = n;
    }
    out[keyId] = counts;
  }
  return out;
}

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="rotor"' };

/** The bearer credential of a check-in; 401 without one. */
export function bearerOf(req: IncomingMessage): string {
  const m = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
  if (!m) throw new HttpError(401, 'UNAUTHORIZED', 'a bearer token is required', CHALLENGE);
  return m[1]!;
}

/** A refused credential: 401, the reason in one line. */
export function unauthorized(reason: string): HttpError {
  return new HttpError(401, 'UNAUTHORIZED', reason, CHALLENGE);
}

/**
 * The shared fleet token (ROTOR_CHECKIN_TOKEN), accepted for one release only and only for
 * verifiers that are not registered: compared in constant time. Without a configured token an
 * unregistered verifier cannot check in at all.
 */
export function checkSharedToken(verifierId: string, presented: string, expected: string | undefined): void {
  if (!expected) {
    throw unauthorized(
      `verifier ${verifierId} is not registered (rotor verifier register ${verifierId} --identity …) and no shared token is configured`,
    );
  }
  if (!timingSafeEqual(digest(presented), digest(expected)))
    throw unauthorized('the bearer token is not valid');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
