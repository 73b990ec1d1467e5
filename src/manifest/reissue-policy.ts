/**
 * Verify before trust: the one decision whether a stored manifest may be re-issued. The rotation's
 * re-sign step, its rollback, the compromise path and `rotor manifest reissue` all ask it before
 * anything is signed, so the rotation is never a signing oracle: a manifest whose signature does
 * not verify under the public key the registry holds for its key_id, whose key belongs to another
 * identity, that is not schema-valid, revoked, expired, or too close to expiry for a twin the SDK
 * accepts, is declined with a reason and never signed.
 *
 * The interface is version-agnostic: a parsed stored manifest (tagged with its format) and the
 * registry's facts in, ok or a reason out. v0.1 (detached JSON signature) and v0.2 (a COSE_Sign1
 * envelope, docs/upstream/agent-manifest-cose-envelope-v0.2.md) are decided here by the same rules:
 * only how the signature is checked differs; the schema (ADR-0012: v0.2 does not change it), the
 * revocation, cut-off and validity-window rules are one code path for both.
 */
import { CoseRefusal, type ExaminedEnvelope, examineEnvelope } from './cose';
import { ManifestError } from './errors';
import { getString, isJsonObject, type JsonObject, type ParsedDocument, parseDocument } from './json';
import { describeSchemaProblems, MAX_VALIDITY_MS, MIN_VALIDITY_MS, manifestSchemaProblems } from './schema';
import { parseTimestamp } from './timestamps';
import { checkManifestSignature } from './verify';
import { verifyCoseEnvelope } from './verify-cose';

/** A stored manifest, parsed once, tagged with its format. */
export type ParsedStoredManifest =
  | { format: 'json-v0.1'; doc: ParsedDocument; root: JsonObject }
  | { format: 'cose-v0.2'; envelope: Uint8Array; examined: ExaminedEnvelope; root: JsonObject };

/** Parses a stored v0.1 manifest's text; throws ManifestError when it is not a JSON object. */
export function parseStoredManifest(
  text: string,
  source?: string,
): Extract<ParsedStoredManifest, { format: 'json-v0.1' }> {
  const doc = parseDocument(text, source);
  if (!isJsonObject(doc.root))
    throw new ManifestError('is not a JSON object', source === undefined ? {} : { source });
  return { format: 'json-v0.1', doc, root: doc.root };
}

/**
 * Parses a stored copy of record: v0.1 text, or a v0.2 envelope read with the envelope spec's §6
 * steps 1-4 (a hybrid COSE_Sign is read, to be declined by name). Throws ManifestError (a
 * CoseRefusal for an envelope) when it cannot be read; `unreadableCode` says which decline it is.
 */
export function parseStoredCopy(
  copy: { text: string | null; envelope: Uint8Array | null },
  source?: string,
): ParsedStoredManifest {
  if (copy.envelope !== null) {
    const examined = examineEnvelope(copy.envelope, source, { allowHybrid: true });
    return { format: 'cose-v0.2', envelope: copy.envelope, examined, root: examined.manifest };
  }
  if (copy.text === null)
    throw new ManifestError('has neither text nor envelope', source === undefined ? {} : { source });
  return parseStoredManifest(copy.text, source);
}

/** The decline code of a copy `parseStoredCopy` could not read. */
export function unreadableCode(err: ManifestError): DeclineCode {
  // A v0.1 payload inside an envelope, or a format rotor does not verify: the version's problem.
  if (err instanceof CoseRefusal && err.kind !== 'MISMATCH') return 'unsupported-version';
  return 'unreadable';
}

/** What the key registry says about one key_id. */
export interface RegistryKey {
  keyId: string;
  /** The signing identity the key belongs to. */
  identity: string;
  /** Raw 32-byte Ed25519 public key, as registered. */
  publicKey: Uint8Array;
}

export interface ReissueFacts {
  /** The registry's record for a key_id, or undefined when rotor does not know the key. */
  lookupKey: (keyId: string) => RegistryKey | undefined;
  /** The identity whose key is being rotated: the manifest's key must belong to it. */
  identity: string;
  /** When set, the manifest must be signed by exactly this key (the one being rotated away from). */
  fromKeyId?: string;
  /** The twin's issued_at (the clock of the decision). */
  now: Date;
  /** True when the CRL holds the manifest's id for a reason other than this rotation. */
  revoked?: boolean;
  /** Compromise cut-off: only manifests stored before it are trusted (`--trusted-before`). */
  trustedBefore?: Date;
  /** When the manifest entered rotor's store (required with `trustedBefore`). */
  storedAt?: Date;
}

export type DeclineCode =
  | 'unreadable'
  | 'duplicate-member'
  | 'unsupported-version'
  | 'unsigned'
  | 'unknown-key'
  | 'foreign-key'
  | 'bad-signature'
  | 'schema'
  | 'revoked'
  | 'stored-after-cutoff'
  | 'not-yet-issued'
  | 'expired'
  | 'expiring'
  | 'unresignable';

export type ReissueDecision =
  | { ok: true; keyId: string; manifestId: string; expiresAt: Date }
  | { ok: false; code: DeclineCode; reason: string };

/** The `code` of every decline, for the store's CHECK constraint and the status summary. */
export const DECLINE_CODES: readonly DeclineCode[] = [
  'unreadable',
  'duplicate-member',
  'unsupported-version',
  'unsigned',
  'unknown-key',
  'foreign-key',
  'bad-signature',
  'schema',
  'revoked',
  'stored-after-cutoff',
  'not-yet-issued',
  'expired',
  'expiring',
  // The manifest verifies but the spec defines no re-issue for it that rotor can make (a hybrid
  // Ed25519 + ML-DSA-65 manifest, a SCITT receipt, a v0.1 member with no v0.2 conversion).
  'unresignable',
];

export function decideReissue(manifest: ParsedStoredManifest, facts: ReissueFacts): ReissueDecision {
  switch (manifest.format) {
    case 'json-v0.1':
      return decideJsonV01(manifest, facts);
    case 'cose-v0.2':
      return decideCoseV02(manifest, facts);
  }
}

function decline(code: DeclineCode, reason: string): ReissueDecision {
  return { ok: false, code, reason };
}

/** The registry's key for `keyId`, if it is one the rotation may re-issue for; else the decline. */
function rotatedKey(keyId: string, facts: ReissueFacts): RegistryKey | ReissueDecision {
  const key = facts.lookupKey(keyId);
  if (key === undefined) return decline('unknown-key', `unknown key ${keyId}: not in rotor's key registry`);
  if (key.identity !== facts.identity)
    return decline('foreign-key', `key ${keyId} belongs to identity ${key.identity}, not ${facts.identity}`);
  if (facts.fromKeyId !== undefined && keyId !== facts.fromKeyId)
    return decline('foreign-key', `signed by ${keyId}, not by the key being rotated (${facts.fromKeyId})`);
  return key;
}

function decideCoseV02(
  { envelope, examined }: Extract<ParsedStoredManifest, { format: 'cose-v0.2' }>,
  facts: ReissueFacts,
): ReissueDecision {
  const keyId = examined.keyId;
  if (examined.hybrid) {
    return decline(
      'unresignable',
      'a hybrid Ed25519 + ML-DSA-65 COSE_Sign: its twin needs an ML-DSA-65 signature, which rotor cannot make; an Ed25519-only twin would be a downgrade',
    );
  }
  const key = rotatedKey(keyId, facts);
  if (!('publicKey' in key)) return key;
  // The envelope spec's §6 in full under the registered public key only: the structure again, then
  // the strict Ed25519 verify over the Sig_structure. Expiry is read before the signature there
  // (the SDK's order); an expired manifest is declined either way, and nothing is signed.
  const verdict = verifyCoseEnvelope(envelope, {
    trustedKeys: new Map([[keyId, key.publicKey]]),
    now: facts.now,
  });
  if (verdict.result === 'EXPIRED') return decline('expired', verdict.reason);
  if (verdict.result !== 'VALID' || !verdict.signatureVerified)
    return decline('bad-signature', `COSE_Sign1 does not verify under ${keyId}: ${verdict.reason}`);
  return decideCommon(examined.manifest, keyId, facts);
}

function decideJsonV01(
  { doc, root }: Extract<ParsedStoredManifest, { format: 'json-v0.1' }>,
  facts: ReissueFacts,
): ReissueDecision {
  // Two readers can disagree about a document with a repeated member name (I-JSON, RFC 7493).
  if (doc.duplicates.length > 0)
    return decline('duplicate-member', `duplicate member name ${doc.duplicates[0]} (I-JSON refuses it)`);
  const version = root.get('version');
  // A JSON document with a detached signature block is a v0.1 manifest; v0.2 is a COSE envelope.
  if (version !== '0.1')
    return decline('unsupported-version', `manifest version ${JSON.stringify(version ?? null)} is not 0.1`);

  // The key: one the registry holds, of the identity being rotated (and the key being rotated).
  const sig = root.get('signature');
  const keyId = isJsonObject(sig) ? getString(sig, 'key_id') : null;
  if (!isJsonObject(sig) || keyId === null)
    return decline('unsigned', 'unsigned: no signature block with a key_id');
  const key = rotatedKey(keyId, facts);
  if (!('publicKey' in key)) return key;

  // The signature, under the registered public key, with the verifier's strict rules.
  const signature = checkManifestSignature(root, new Map([[keyId, key.publicKey]]));
  if (!signature.ok)
    return decline('bad-signature', `signature does not verify under ${keyId}: ${signature.reason}`);
  return decideCommon(root, keyId, facts);
}

/**
 * Whether a copy may enter rotor's store at import (issue 10 point 5): readable, no repeated member
 * name, signed, and its signature verifies under the public key the registry holds for its key_id
 * (v0.1: the strict detached signature; v0.2: the COSE_Sign1, checked as of the manifest's own
 * issued_at so an expired manifest can still be archived). Null when it may; else the decline.
 * Schema, revocation and the validity window are the re-issue decision's, not the import's.
 */
export function admissionProblem(
  manifest: ParsedStoredManifest,
  lookupKey: (keyId: string) => RegistryKey | undefined,
): { code: DeclineCode; reason: string } | null {
  if (manifest.format === 'cose-v0.2') {
    const keyId = manifest.examined.keyId;
    const key = lookupKey(keyId);
    if (key === undefined)
      return { code: 'unknown-key', reason: `unknown key ${keyId}: not in rotor's key registry` };
    const issued = parseTimestamp(String(manifest.root.get('issued_at') ?? ''));
    const at = typeof issued === 'string' ? new Date() : new Date(issued.epochMs);
    const verdict = verifyCoseEnvelope(manifest.envelope, {
      trustedKeys: new Map([[keyId, key.publicKey]]),
      now: at,
    });
    if (!verdict.signatureVerified)
      return {
        code: 'bad-signature',
        reason: `COSE_Sign1 does not verify under ${keyId}: ${verdict.reason}`,
      };
    return null;
  }
  const { doc, root } = manifest;
  if (doc.duplicates.length > 0)
    return {
      code: 'duplicate-member',
      reason: `duplicate member name ${doc.duplicates[0]} (I-JSON refuses it)`,
    };
  const sig = root.get('signature');
  const keyId = isJsonObject(sig) ? getString(sig, 'key_id') : null;
  if (!isJsonObject(sig) || keyId === null)
    return { code: 'unsigned', reason: 'unsigned: no signature block with a key_id' };
  const key = lookupKey(keyId);
  if (key === undefined)
    return { code: 'unknown-key', reason: `unknown key ${keyId}: not in rotor's key registry` };
  const signature = checkManifestSignature(root, new Map([[keyId, key.publicKey]]));
  if (!signature.ok)
    return { code: 'bad-signature', reason: `signature does not verify under ${keyId}: ${signature.reason}` };
  return null;
}

/** What follows a verified signature, for either version: schema, revocation, cut-off, window. */
function decideCommon(root: JsonObject, keyId: string, facts: ReissueFacts): ReissueDecision {
  // Only what the SDK would call schema-valid is re-issued (a twin inherits every member).
  const problems = manifestSchemaProblems(root);
  if (problems.length > 0) return decline('schema', describeSchemaProblems(problems));
  const manifestId = root.get('manifest_id') as string;
  if (facts.revoked) return decline('revoked', `manifest_id ${manifestId} is revoked`);
  if (facts.trustedBefore !== undefined) {
    if (facts.storedAt === undefined || facts.storedAt.getTime() >= facts.trustedBefore.getTime()) {
      const at = facts.storedAt === undefined ? 'at an unknown time' : facts.storedAt.toISOString();
      return decline(
        'stored-after-cutoff',
        `stored ${at}, not before the trusted cut-off ${facts.trustedBefore.toISOString()}`,
      );
    }
  }

  // The twin's validity window (spec §3.1): issued now (whole seconds), expires when the original does.
  const expiresText = root.get('expires_at') as string;
  const issuedText = root.get('issued_at') as string;
  const expires = parseTimestamp(expiresText);
  const issued = parseTimestamp(issuedText);
  if (typeof expires === 'string' || typeof issued === 'string')
    return decline('schema', 'unreadable timestamps');
  const now = facts.now.getTime();
  if (issued.epochMs > now) return decline('not-yet-issued', `issued_at ${issuedText} is in the future`);
  if (expires.epochMs <= now) return decline('expired', `expired at ${expiresText}`);
  const twinIssued = Math.floor(now / 1000) * 1000;
  if (expires.epochMs - twinIssued < MIN_VALIDITY_MS) {
    return decline(
      'expiring',
      `expires within the SDK's 1-hour window (expires_at ${expiresText}): a twin issued now would be refused; left as it is until it expires`,
    );
  }
  if (expires.epochMs - twinIssued > MAX_VALIDITY_MS)
    return decline('schema', 'expires_at is more than 365 days after the twin would be issued');
  return { ok: true, keyId, manifestId, expiresAt: new Date(expires.epochMs) };
}
