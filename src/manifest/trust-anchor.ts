/**
 * The trust anchor document verifiers fetch from `/.well-known/agent-manifest/trust-anchor`
 * (docs/runbook-key-rotation.txt, Step 5). It writes key ids as `sha256:<hex>`; signature blocks and CRLs use bare hex.
 */
import { publicKeyProblem } from './ed25519';
import { ManifestError } from './errors';
import { b64urlDecode, b64urlEncode, KeyFormatError, keyIdOf } from './keys';
import { formatUtcSeconds, parseTimestamp } from './timestamps';

export interface TrustAnchorKey {
  key_id: string;
  algorithm: 'Ed25519';
  public_key: string;
  valid_from: string;
  status?: string;
  valid_until?: string | null;
}

export interface TrustAnchorDocument {
  version?: number;
  active_key_id: string;
  keys: TrustAnchorKey[];
}

export interface TrustAnchorKeyInput {
  /** Bare lowercase hex. */
  keyId: string;
  publicKey: Uint8Array;
  validFrom: Date | string;
  status?: string;
  validUntil?: Date | string | null;
}

const PREFIXED_KEY_ID = /^sha256:[0-9a-f]{64}$/;
const BARE_KEY_ID = /^[0-9a-f]{64}$/;

export function buildTrustAnchor(input: {
  activeKeyId: string;
  keys: TrustAnchorKeyInput[];
  version?: number;
}): TrustAnchorDocument {
  const keys = input.keys.map((k, i) => {
    const path = `keys[${i}]`;
    if (!BARE_KEY_ID.test(k.keyId)) fail(`key_id must be 64 lowercase hex characters`, `${path}.key_id`);
    const problem = publicKeyProblem(k.publicKey);
    if (problem !== null) fail(problem, `${path}.public_key`);
    if (keyIdOf(k.publicKey) !== k.keyId)
      fail(`key_id ${k.keyId} is not the SHA-256 of this public key`, `${path}.key_id`);
    const key: TrustAnchorKey = {
      key_id: `sha256:${k.keyId}`,
      algorithm: 'Ed25519',
      public_key: b64urlEncode(k.publicKey),
      valid_from: timestampText(k.validFrom, `${path}.valid_from`),
    };
    if (k.status !== undefined) key.status = k.status;
    if (k.validUntil !== undefined)
      key.valid_until = k.validUntil === null ? null : timestampText(k.validUntil, `${path}.valid_until`);
    return key;
  });
  const doc: TrustAnchorDocument =
    input.version === undefined
      ? { active_key_id: `sha256:${input.activeKeyId}`, keys }
      : { version: input.version, active_key_id: `sha256:${input.activeKeyId}`, keys };
  return validateTrustAnchor(doc);
}

/** Checks a parsed trust anchor (for example from JSON.parse) and returns it typed. */
export function validateTrustAnchor(doc: unknown): TrustAnchorDocument {
  if (!isRecord(doc)) fail('is not a JSON object');
  if (
    doc['version'] !== undefined &&
    (!Number.isSafeInteger(doc['version']) || (doc['version'] as number) < 0)
  ) {
    fail('must be a non-negative integer', 'version');
  }
  const active = doc['active_key_id'];
  if (typeof active !== 'string' || !PREFIXED_KEY_ID.test(active))
    fail('must be "sha256:" and 64 lowercase hex characters', 'active_key_id');
  const keys = doc['keys'];
  if (!Array.isArray(keys) || keys.length === 0) fail('must be a non-empty array', 'keys');
  const seen = new Set<string>();
  keys.forEach((k: unknown, i: number) => {
    const path = `keys[${i}]`;
    if (!isRecord(k)) fail('is not a JSON object', path);
    const keyId = k['key_id'];
    if (typeof keyId !== 'string' || !PREFIXED_KEY_ID.test(keyId))
      fail('must be "sha256:" and 64 lowercase hex characters', `${path}.key_id`);
    if (seen.has(keyId)) fail(`key_id ${keyId} is listed twice`, `${path}.key_id`);
    seen.add(keyId);
    if (k['algorithm'] !== 'Ed25519')
      fail(`unsupported algorithm ${JSON.stringify(k['algorithm'])} (Ed25519 only)`, `${path}.algorithm`);
    const publicKey = decodePublicKey(k['public_key'], `${path}.public_key`);
    if (`sha256:${keyIdOf(publicKey)}` !== keyId)
      fail(`key_id ${keyId} is not the SHA-256 of public_key`, `${path}.key_id`);
    checkTimestamp(k['valid_from'], `${path}.valid_from`);
    if (k['status'] !== undefined && (typeof k['status'] !== 'string' || k['status'] === ''))
      fail('must be a non-empty string', `${path}.status`);
    if (k['valid_until'] !== undefined && k['valid_until'] !== null)
      checkTimestamp(k['valid_until'], `${path}.valid_until`);
  });
  if (!seen.has(active)) fail(`${active} is not among keys`, 'active_key_id');
  return doc as unknown as TrustAnchorDocument;
}

/**
 * The anchor's keys as a verifier's trusted set (bare hex key_id -> public key). Keys with status
 * "revoked" are left out; given `now`, so are keys outside their valid_from/valid_until window.
 */
export function trustedKeysFromAnchor(
  doc: TrustAnchorDocument,
  opts: { now?: Date } = {},
): Map<string, Uint8Array> {
  const anchor = validateTrustAnchor(doc);
  const out = new Map<string, Uint8Array>();
  for (const k of anchor.keys) {
    if (k.status === 'revoked') continue;
    if (opts.now !== undefined) {
      const now = opts.now.getTime();
      const from = parseTimestamp(k.valid_from);
      if (typeof from !== 'string' && from.epochMs > now) continue;
      if (typeof k.valid_until === 'string') {
        const until = parseTimestamp(k.valid_until);
        if (typeof until !== 'string' && until.epochMs <= now) continue;
      }
    }
    out.set(k.key_id.slice('sha256:'.length), b64urlDecode(k.public_key));
  }
  return out;
}

function decodePublicKey(value: unknown, path: string): Uint8Array {
  if (typeof value !== 'string') fail('must be a base64url string', path);
  let bytes: Uint8Array;
  try {
    bytes = b64urlDecode(value, 'public_key');
  } catch (err) {
    fail(err instanceof KeyFormatError ? err.message : 'is not base64url', path);
  }
  const problem = publicKeyProblem(bytes);
  if (problem !== null) fail(problem, path);
  return bytes;
}

function checkTimestamp(value: unknown, path: string): void {
  if (typeof value !== 'string') fail('must be a timestamp string', path);
  const parsed = parseTimestamp(value);
  if (typeof parsed === 'string') fail(parsed, path);
}

function timestampText(value: Date | string, path: string): string {
  if (value instanceof Date) {
    if (!Number.isFinite(value.getTime())) fail('is an invalid Date', path);
    return formatUtcSeconds(value);
  }
  checkTimestamp(value, path);
  return value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(what: string, path?: string): never {
  throw new ManifestError(
    what,
    path === undefined ? { source: 'trust anchor' } : { source: 'trust anchor', path },
  );
}
