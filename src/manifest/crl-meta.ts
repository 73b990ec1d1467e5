/**
 * The CRL's signed header (issue 12, point 2): what `/.well-known/agent-manifest/revocation.meta.jws`
 * serves. A JWS in the JSON General Serialization like the signed anchor (RFC 7515 §7.2.1, `alg`
 * EdDSA per RFC 8037, `kid` the lowercase hex SHA-256 of the raw public key; anchor-jws.ts), with
 * one signature by the identity's revocation key (ADR-0007's revoking authority, named in the
 * signed anchor's `revocation_key`). The payload says which body it describes: how many records,
 * the SHA-256 of the full CRL body exactly as served, the CRL head sequence number (`seq`, the
 * body's CRL-Head) and until when a verifier may rely on it (`next_update`). A verifier that
 * checks it detects a truncated or altered CRL (hash, count), a frozen one (an old body replayed
 * with its old header: next_update passed) and a rollback (seq lower than one it held).
 *
 * Pure: no I/O. Refusals are RotorErrors with code CRL_META_UNTRUSTED, one line each.
 */
import { createHash } from 'node:crypto';
import { RotorError } from '../errors';
import { verifyStrict } from './ed25519';
import { b64urlDecode, b64urlEncode, keyIdOf } from './keys';
import type { Signer } from './signer';
import { parseTimestamp } from './timestamps';

/** The `typ` of the header's protected header. */
export const CRL_META_JWS_TYP = 'agent-manifest-crl-meta+jws';
/** Largest header a verifier reads (it is a few hundred bytes). */
export const MAX_CRL_META_BYTES = 16 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;

export interface CrlMetaPayload {
  identity: string;
  /** The CRL head sequence number of the body described (its CRL-Head). */
  seq: number;
  /** Lines (records) of the full body. */
  records: number;
  /** Lowercase hex SHA-256 of the full body exactly as served (every line ending in `\n`). */
  sha256: string;
  issued_at: string;
  /** After this instant the header, and the body it describes, must not be relied on. */
  next_update: string;
}

export interface TrustedCrlMeta {
  payload: CrlMetaPayload;
  seq: number;
  records: number;
  sha256: string;
  issuedAt: Date;
  nextUpdate: Date;
}

function refuse(source: string, what: string): never {
  throw new RotorError(`${source}: ${what}`, 'CRL_META_UNTRUSTED');
}

/** The full CRL body as `rotor serve` sends it: each line followed by `\n`; no lines, no bytes. */
export function crlBodyOf(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** SHA-256 (lowercase hex) of a CRL body given as its lines (see crlBodyOf). */
export function crlBodySha256(lines: readonly string[]): string {
  const hash = createHash('sha256');
  for (const line of lines) hash.update(line).update('\n');
  return hash.digest('hex');
}

/** Signs the header with the revocation key: one signature, its own protected header. */
export async function signCrlMeta(payload: CrlMetaPayload, signer: Signer): Promise<string> {
  checkPayload(payload, 'CRL header');
  const payloadB64 = b64urlEncode(Buffer.from(JSON.stringify(payload), 'utf8'));
  const header = { alg: 'EdDSA', kid: signer.keyId, typ: CRL_META_JWS_TYP };
  const protectedB64 = b64urlEncode(Buffer.from(JSON.stringify(header), 'utf8'));
  const signature = await signer.sign(Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'));
  return `${JSON.stringify({ payload: payloadB64, signatures: [{ protected: protectedB64, signature: b64urlEncode(signature) }] })}\n`;
}

export interface VerifyCrlMetaOptions {
  /** The revocation key the verifier trusts (from its trusted signed anchor's `revocation_key`). */
  revocationKey: { keyId: string; publicKey: Uint8Array };
  now: Date;
  /** Refuse a header of another identity. */
  identity?: string;
  /** Refuse a header below this seq (the one held: the CRL never goes backwards). */
  minSeq?: number;
  /** Where it came from, for messages. */
  source?: string;
}

/**
 * Verifies a header: a General-Serialization JWS with a valid EdDSA signature by the revocation
 * key (signatures by any other key are ignored and never suffice), a well-formed payload of the
 * identity, not past `next_update`, not below `minSeq`. Whether the body matches is the caller's
 * check (it holds the body): compare `sha256` and `records`.
 */
export function verifyCrlMeta(text: string, options: VerifyCrlMetaOptions): TrustedCrlMeta {
  const source = options.source ?? 'CRL header';
  if (Buffer.byteLength(text, 'utf8') > MAX_CRL_META_BYTES)
    refuse(source, `larger than ${MAX_CRL_META_BYTES} bytes`);
  let jws: unknown;
  try {
    jws = JSON.parse(text);
  } catch {
    refuse(source, 'is not JSON (the CRL header is a JWS in the JSON General Serialization)');
  }
  if (!isRecord(jws) || typeof jws.payload !== 'string' || !Array.isArray(jws.signatures)) {
    refuse(source, 'is not a General-Serialization JWS: it needs "payload" and "signatures"');
  }
  if (jws.signatures.length === 0) refuse(source, 'is unsigned (signatures is empty): refused');
  if (jws.signatures.length > 8) refuse(source, 'carries more than 8 signatures');
  const payloadB64 = jws.payload;
  const kid = options.revocationKey.keyId;
  if (keyIdOf(options.revocationKey.publicKey) !== kid)
    refuse(source, 'the trusted revocation key_id is not the SHA-256 of its key');
  const kids: string[] = [];
  let verified = false;
  jws.signatures.forEach((s: unknown, i: number) => {
    const where = `signatures[${i}]`;
    if (!isRecord(s) || typeof s.protected !== 'string' || typeof s.signature !== 'string') {
      refuse(source, `${where} needs "protected" and "signature" strings`);
    }
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(b64urlDecode(s.protected, `${where}.protected`)).toString('utf8'));
    } catch {
      refuse(source, `${where}.protected is not base64url JSON`);
    }
    if (!isRecord(header)) refuse(source, `${where}.protected is not a JSON object`);
    if (typeof header.kid !== 'string' || !HEX64.test(header.kid))
      refuse(source, `${where}: kid must be 64 lowercase hex characters`);
    kids.push(header.kid);
    if (header.kid !== kid) return;
    if (header.alg !== 'EdDSA') refuse(source, `${where}: alg ${JSON.stringify(header.alg)} is not EdDSA`);
    // RFC 7515 §4.1.11: a critical extension not understood makes the JWS invalid.
    if (header.crit !== undefined)
      refuse(source, `${where}: crit ${JSON.stringify(header.crit)} is not understood`);
    if (header.b64 !== undefined) refuse(source, `${where}: b64 is not supported`);
    let signature: Uint8Array;
    try {
      signature = b64urlDecode(s.signature, `${where}.signature`);
    } catch {
      refuse(source, `${where}.signature is not base64url`);
    }
    const input = Buffer.from(`${s.protected}.${payloadB64}`, 'ascii');
    if (!verifyStrict(options.revocationKey.publicKey, input, signature)) {
      refuse(
        source,
        `the signature by the revocation key ${kid.slice(0, 16)}… does not verify (the header was altered)`,
      );
    }
    verified = true;
  });
  if (!verified) {
    refuse(
      source,
      `not signed by the revocation key ${kid.slice(0, 16)}… of the trusted anchor (signers: ${kids.map((k) => k.slice(0, 16)).join(', ')}): unknown signer`,
    );
  }
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(b64urlDecode(payloadB64, 'payload')).toString('utf8'));
  } catch {
    refuse(source, 'payload is not base64url JSON');
  }
  const p = checkPayload(payload, source);
  if (options.identity !== undefined && p.identity !== options.identity) {
    refuse(source, `is the CRL header of identity ${p.identity}, not ${options.identity}`);
  }
  const issued = parseTimestamp(p.issued_at);
  const next = parseTimestamp(p.next_update);
  if (typeof issued === 'string' || typeof next === 'string') refuse(source, 'bad timestamps');
  if (options.now.getTime() >= next.epochMs) {
    refuse(
      source,
      `next_update ${p.next_update} has passed (now ${options.now.toISOString()}): the CRL is frozen or stale, refused`,
    );
  }
  if (options.minSeq !== undefined && p.seq < options.minSeq) {
    refuse(source, `seq ${p.seq} is lower than ${options.minSeq} already held: rollback refused`);
  }
  return {
    payload: p,
    seq: p.seq,
    records: p.records,
    sha256: p.sha256,
    issuedAt: new Date(issued.epochMs),
    nextUpdate: new Date(next.epochMs),
  };
}

function checkPayload(value: unknown, source: string): CrlMetaPayload {
  if (!isRecord(value)) refuse(source, 'payload is not a JSON object');
  if (typeof value.identity !== 'string' || value.identity === '')
    refuse(source, 'payload field identity is missing');
  for (const field of ['seq', 'records'] as const) {
    if (!Number.isSafeInteger(value[field]) || (value[field] as number) < 0) {
      refuse(source, `payload field ${field} must be a whole number >= 0`);
    }
  }
  if (typeof value.sha256 !== 'string' || !HEX64.test(value.sha256)) {
    refuse(source, 'payload field sha256 must be 64 lowercase hex characters');
  }
  for (const field of ['issued_at', 'next_update'] as const) {
    if (typeof value[field] !== 'string' || typeof parseTimestamp(value[field] as string) === 'string') {
      refuse(source, `payload field ${field} must be a timestamp`);
    }
  }
  return value as unknown as CrlMetaPayload;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
