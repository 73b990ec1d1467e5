/**
 * Revocation records in the SDK's FileCRL JSON-lines format. The signature covers the canonical
 * form of {manifest_id, revoked_at, reason, revoked_by} with revoked_at as Python's isoformat()
 * of the parsed timestamp. The SDK's loader silently skips a record that fails; rotor's reader
 * reports each rejected line with its number and reason.
 */
import { verify } from 'node:crypto';
import { errorMessage } from '../errors';
import { canonicalize } from './canonical';
import { signatureProblem, trustedKey } from './ed25519';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, type JsonValue, parseJson } from './json';
import { b64urlDecode, b64urlEncode } from './keys';
import type { Signer } from './signer';
import {
  parseTimestamp,
  pydanticDatetime,
  pythonIsoformat,
  type Timestamp,
  timestampFromDate,
} from './timestamps';

export interface RevocationRecord {
  manifestId: string;
  /** `revoked_at` exactly as the line writes it. */
  revokedAt: string;
  reason: string;
  revokedBy: string;
  revocationSignature: string;
  signerKeyId: string | null;
}

export interface RevocationInput {
  manifestId: string;
  reason: string;
  revokedBy: string;
  revokedAt: Date | string;
}

/** The exact bytes a revocation signature covers. */
export function revocationPreImage(fields: {
  manifestId: string;
  revokedAt: Timestamp;
  reason: string;
  revokedBy: string;
}): Uint8Array {
  const obj: JsonObject = new Map<string, JsonValue>([
    ['manifest_id', fields.manifestId],
    ['revoked_at', pythonIsoformat(fields.revokedAt)],
    ['reason', fields.reason],
    ['revoked_by', fields.revokedBy],
  ]);
  return Buffer.from(canonicalize(obj), 'utf8');
}

/** Signs a record and writes its line as the SDK's FileCRL does (pydantic's compact JSON). */
export async function signRevocation(
  input: RevocationInput,
  signer: Signer,
): Promise<{ line: string; record: RevocationRecord }> {
  for (const field of ['manifestId', 'reason', 'revokedBy'] as const) {
    if (typeof input[field] !== 'string')
      throw new ManifestError(`${field} must be a string`, { source: 'revocation' });
  }
  if (input.manifestId === '') throw new ManifestError('manifestId is empty', { source: 'revocation' });
  let ts: Timestamp;
  if (input.revokedAt instanceof Date) ts = timestampFromDate(input.revokedAt);
  else {
    const parsed = parseTimestamp(input.revokedAt);
    if (typeof parsed === 'string')
      throw new ManifestError(parsed, { source: 'revocation', path: 'revoked_at' });
    ts = parsed;
  }
  const preImage = revocationPreImage({ ...input, revokedAt: ts });
  const signature = await signer.sign(preImage);
  if (signature.length !== 64) {
    throw new ManifestError(`signer ${signer.keyId} returned ${signature.length} bytes, not 64`, {
      source: 'revocation',
    });
  }
  const record: RevocationRecord = {
    manifestId: input.manifestId,
    revokedAt: pydanticDatetime(ts),
    reason: input.reason,
    revokedBy: input.revokedBy,
    revocationSignature: b64urlEncode(signature),
    signerKeyId: signer.keyId,
  };
  return { line: revocationLine(record), record };
}

/** One FileCRL line (no newline): pydantic's field order, compact, non-ASCII written raw. */
export function revocationLine(record: RevocationRecord): string {
  return (
    `{"manifest_id":${JSON.stringify(record.manifestId)},"revoked_at":${JSON.stringify(record.revokedAt)},` +
    `"reason":${JSON.stringify(record.reason)},"revoked_by":${JSON.stringify(record.revokedBy)},` +
    `"revocation_signature":${JSON.stringify(record.revocationSignature)},` +
    `"signer_key_id":${JSON.stringify(record.signerKeyId)}}`
  );
}

export type LineVerdict = { ok: true; record: RevocationRecord } | { ok: false; reason: string };

/** A longer line is not a revocation record. */
const MAX_LINE_CHARS = 1024 * 1024;

/**
 * Checks one CRL line against the trusted keys (bare hex key_id -> public key). A record naming
 * its signer_key_id is checked with that key only; one without is accepted if any trusted key
 * verifies it, as the SDK's single-key loader would.
 */
export function verifyRevocationLine(line: string, trustedKeys: Map<string, Uint8Array>): LineVerdict {
  if (line.length > MAX_LINE_CHARS) return reject(`line is longer than ${MAX_LINE_CHARS} characters`);
  let value: JsonValue;
  try {
    value = parseJson(pythonStrip(line), 'record');
  } catch (err) {
    return reject(`not JSON: ${errorMessage(err).replace(/^record: /, '')}`);
  }
  if (!isJsonObject(value)) return reject('not a JSON object');
  const fields: Record<string, string> = {};
  for (const name of ['manifest_id', 'revoked_at', 'reason', 'revoked_by'] as const) {
    const v = value.get(name);
    if (typeof v !== 'string')
      return reject(v === undefined ? `${name} is missing` : `${name} is not a string`);
    fields[name] = v;
  }
  const manifestId = fields['manifest_id']!;
  const revokedAt = parseTimestamp(fields['revoked_at']!);
  if (typeof revokedAt === 'string') return reject(`revoked_at: ${revokedAt}`);
  const sigText = value.get('revocation_signature');
  if (sigText === undefined || sigText === null || sigText === '') {
    return reject(
      `manifest_id ${manifestId}: unsigned (revocation_signature is ${sigText === '' ? 'empty' : 'null'})`,
    );
  }
  if (typeof sigText !== 'string')
    return reject(`manifest_id ${manifestId}: revocation_signature is not a string`);
  const signerField = value.get('signer_key_id');
  if (signerField !== undefined && signerField !== null && typeof signerField !== 'string') {
    return reject(`manifest_id ${manifestId}: signer_key_id is not a string`);
  }
  const signerKeyId = typeof signerField === 'string' ? signerField : null;
  let signature: Uint8Array;
  try {
    signature = b64urlDecode(sigText, 'revocation_signature');
  } catch (err) {
    return reject(`manifest_id ${manifestId}: ${errorMessage(err)}`);
  }
  const malformed = signatureProblem(signature);
  if (malformed !== null) return reject(`manifest_id ${manifestId}: revocation_signature: ${malformed}`);
  let preImage: Uint8Array;
  try {
    preImage = revocationPreImage({
      manifestId,
      revokedAt,
      reason: fields['reason']!,
      revokedBy: fields['revoked_by']!,
    });
  } catch (err) {
    return reject(`manifest_id ${manifestId}: ${errorMessage(err)}`);
  }
  const candidates: [string, Uint8Array][] = [];
  if (signerKeyId !== null) {
    const pk = trustedKeys.get(signerKeyId);
    if (pk === undefined)
      return reject(`manifest_id ${manifestId}: signer_key_id ${signerKeyId} is not a trusted key`);
    candidates.push([signerKeyId, pk]);
  } else candidates.push(...trustedKeys);
  if (candidates.length === 0) return reject(`manifest_id ${manifestId}: no trusted key to check it with`);
  let problem: string | null = null;
  for (const [keyId, pk] of candidates) {
    const key = trustedKey(keyId, pk);
    if (!key.ok) {
      problem = key.problem;
      continue;
    }
    if (verify(null, preImage, key.keyObject, signature)) {
      const record: RevocationRecord = {
        manifestId,
        revokedAt: fields['revoked_at']!,
        reason: fields['reason']!,
        revokedBy: fields['revoked_by']!,
        revocationSignature: sigText,
        signerKeyId,
      };
      return { ok: true, record };
    }
  }
  const signer = signerKeyId === null ? 'any trusted key' : `key_id ${signerKeyId}`;
  return reject(`manifest_id ${manifestId}: ${problem ?? `the signature does not verify with ${signer}`}`);
}

function reject(reason: string): LineVerdict {
  return { ok: false, reason };
}

export interface CrlReport {
  accepted: RevocationRecord[];
  rejected: { line: number; reason: string }[];
}

/**
 * Reads a CRL: a whole text, or an iterable of lines (strings, or bytes that must be UTF-8).
 * Blank lines are skipped, as the SDK skips them; line numbers count every line from 1.
 */
export async function readCrl(
  lines: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array> | string,
  trustedKeys: Map<string, Uint8Array>,
): Promise<CrlReport> {
  const report: CrlReport = { accepted: [], rejected: [] };
  let lineNumber = 0;
  const take = (raw: string | Uint8Array) => {
    lineNumber++;
    let line: string;
    if (typeof raw === 'string') line = raw;
    else {
      try {
        line = UTF8.decode(raw);
      } catch {
        report.rejected.push({ line: lineNumber, reason: 'not valid UTF-8' });
        return;
      }
    }
    if (pythonStrip(line) === '') return;
    const verdict = verifyRevocationLine(line, trustedKeys);
    if (verdict.ok) report.accepted.push(verdict.record);
    else report.rejected.push({ line: lineNumber, reason: verdict.reason });
  };
  if (typeof lines === 'string') {
    const parts = lines.split(/\r\n|\r|\n/);
    if (parts[parts.length - 1] === '') parts.pop();
    for (const part of parts) take(part);
  } else if (Symbol.asyncIterator in lines) {
    for await (const raw of lines) take(raw);
  } else {
    for (const raw of lines) take(raw);
  }
  return report;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Splits a byte stream (a file, an HTTP body) into lines, without decoding them. */
export async function* crlLines(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk]);
    let nl = pending.indexOf(0x0a);
    while (nl !== -1) {
      const end = nl > 0 && pending[nl - 1] === 0x0d ? nl - 1 : nl;
      yield pending.subarray(0, end);
      pending = pending.subarray(nl + 1);
      nl = pending.indexOf(0x0a);
    }
  }
  if (pending.length > 0) yield pending;
}

/** Python's str.strip() with no arguments: its whitespace set differs from JS trim(). */
export function pythonStrip(s: string): string {
  return s.replace(PY_WS_EDGES, '');
}

const PY_WS =
  '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_EDGES = new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, 'g');
