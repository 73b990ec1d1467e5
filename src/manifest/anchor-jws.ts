/**
 * Signed trust anchors: the anchor document as the payload of a JWS in the JSON General
 * Serialization (RFC 7515 §7.2.1), each signature `alg` EdDSA over Ed25519 (RFC 8037), `kid` the
 * lowercase hex SHA-256 of the raw public key (the key_id rule agent-manifest already uses).
 *
 * Trust follows TUF's root role: a verifier pins a root key set and a threshold out of band; an
 * anchor is trusted when at least `threshold` distinct pinned root keys signed it. An anchor that
 * names a different root set (a root rotation) must also carry a threshold of signatures from the
 * set it names; once trusted, that set becomes the pinned one. Signatures by other keys (the
 * outgoing signing key of a routine rotation) are checked when their key is in the payload and
 * never count toward a root threshold.
 *
 * Pure: no I/O. Refusals are RotorErrors with code ANCHOR_UNTRUSTED (exit 1), one line each.
 */
import { createHash } from 'node:crypto';
import { RotorError } from '../errors';
import { publicKeyProblem, verifyStrict } from './ed25519';
import { b64urlDecode, b64urlEncode, keyIdOf } from './keys';
import type { Signer } from './signer';
import { parseTimestamp } from './timestamps';
import { type TrustAnchorDocument, validateTrustAnchor } from './trust-anchor';

/** Largest signed anchor a verifier reads (the anchor lists a handful of keys). */
export const MAX_SIGNED_ANCHOR_BYTES = 256 * 1024;
/**
 * Most root rotations a verifier follows in one catch-up (TUF's root chain, README "Following root
 * rotations"): a served anchor naming a root version further ahead is refused rather than walked.
 */
export const MAX_ROOT_CHAIN_STEPS = 32;
/** Where `rotor serve` serves the anchor that introduced root set `n` (README "Following root rotations"). */
export function rootChainPath(n: number): string {
  return `/.well-known/agent-manifest/root/${n}.jws`;
}
/** The `typ` of every signature's protected header. */
export const ANCHOR_JWS_TYP = 'agent-manifest-trust-anchor+jws';

const HEX64 = /^[0-9a-f]{64}$/;

export interface RootKeyEntry {
  /** Lowercase hex SHA-256 of the raw public key: the JWS `kid`. */
  kid: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

/** A root key set and how many of its keys must sign. */
export interface RootSet {
  threshold: number;
  keys: RootKeyEntry[];
}

/** The anchor document as signed: the runbook's document plus identity, validity and roots. */
export interface SignedAnchorPayload extends TrustAnchorDocument {
  identity: string;
  version: number;
  issued_at: string;
  expires_at: string;
  /**
   * `version` numbers the root set (1, 2, …: one more at each root rotation); anchors signed
   * before the field existed carry none and count as version 1.
   */
  root: { version?: number; threshold: number; keys: { kid: string; public_key: string }[] };
  /** The revocation authority's key (ADR-0007): signs every CRL record of the identity. */
  revocation_key?: { key_id: string; public_key: string };
}

export interface TrustedAnchor {
  payload: SignedAnchorPayload;
  /** The anchor as the runbook's document (what `trustedKeysFromAnchor` reads). */
  document: TrustAnchorDocument;
  version: number;
  issuedAt: Date;
  expiresAt: Date;
  /** The root set the anchor names: a verifier pins it once the anchor is trusted. */
  root: RootSet;
  /** The number of that root set (`root.version`; 1 when the payload predates the field). */
  rootVersion: number;
  /** kids of every valid signature, root or not. */
  signedBy: string[];
  /** Lowercase hex SHA-256 of the JWS text exactly as received (what check-ins report). */
  sha256: string;
}

export interface VerifyAnchorOptions {
  /** The pinned root set. */
  trusted: RootSet;
  now: Date;
  /** Refuse anchors below this version (rollback). */
  minVersion?: number;
  /** Refuse anchors of another identity. */
  identity?: string;
  /** Where the JWS came from, for messages. */
  source?: string;
  /**
   * Do not refuse an expired anchor: for the links of a root chain, which are old by nature;
   * TUF checks only the final root's expiry, and the current anchor's expiry is still checked.
   */
  ignoreExpiry?: boolean;
  /**
   * The version of the pinned set `trusted` (TUF's root version). When given, an anchor naming a
   * lower root set, or this same version with other keys, is refused even if the pinned keys
   * signed it: root sets only move forward, and a set's keys change only with its version.
   */
  rootVersion?: number;
}

function refuse(source: string, what: string): never {
  throw new RotorError(`${source}: ${what}`, 'ANCHOR_UNTRUSTED');
}

export function rootSetFromPublicKeys(publicKeys: Uint8Array[], threshold: number): RootSet {
  const keys = publicKeys.map((publicKey) => ({ kid: keyIdOf(publicKey), publicKey }));
  checkRootSet({ threshold, keys }, 'root set');
  return { threshold, keys };
}

function checkRootSet(root: RootSet, source: string): void {
  if (root.keys.length === 0) refuse(source, 'the root set has no keys');
  const kids = new Set(root.keys.map((k) => k.kid));
  if (kids.size !== root.keys.length) refuse(source, 'the root set lists a key twice');
  if (!Number.isSafeInteger(root.threshold) || root.threshold < 1 || root.threshold > root.keys.length) {
    refuse(source, `root threshold ${root.threshold} must be between 1 and ${root.keys.length}`);
  }
  for (const k of root.keys) {
    const problem = publicKeyProblem(k.publicKey);
    if (problem !== null) refuse(source, `root key ${k.kid}: ${problem}`);
    if (keyIdOf(k.publicKey) !== k.kid)
      refuse(source, `root key ${k.kid} is not the SHA-256 of its public key`);
  }
}

/** The root set version an anchor payload names; anchors from before the field count as version 1. */
export function rootVersionOf(payload: Pick<SignedAnchorPayload, 'root'>): number {
  return payload.root.version ?? 1;
}

/** The payload's `root` member as JSON (without its version: `publishTrustAnchor` adds it). */
export function rootSetJson(root: RootSet): SignedAnchorPayload['root'] {
  return {
    threshold: root.threshold,
    keys: root.keys.map((k) => ({ kid: k.kid, public_key: b64urlEncode(k.publicKey) })),
  };
}

/**
 * Signs `payload` (the exact bytes of the anchor document) with every signer: one JWS JSON General
 * Serialization, one signature per signer in the order given, each with its own protected header.
 */
export async function signAnchorJws(payload: Uint8Array, signers: Signer[]): Promise<string> {
  if (signers.length === 0) throw new RotorError('a signed anchor needs at least one signer', 'ANCHOR_SIGN');
  const payloadB64 = b64urlEncode(payload);
  const seen = new Set<string>();
  const signatures = [];
  for (const signer of signers) {
    if (seen.has(signer.keyId)) continue;
    seen.add(signer.keyId);
    const header = { alg: 'EdDSA', kid: signer.keyId, typ: ANCHOR_JWS_TYP };
    const protectedB64 = b64urlEncode(Buffer.from(JSON.stringify(header), 'utf8'));
    const signature = await signer.sign(Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'));
    signatures.push({ protected: protectedB64, signature: b64urlEncode(signature) });
  }
  return `${JSON.stringify({ payload: payloadB64, signatures })}\n`;
}

export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

interface ParsedSignature {
  kid: string;
  signingInput: Uint8Array;
  signature: Uint8Array;
}

function parseGeneralJws(
  text: string,
  source: string,
): { payload: Uint8Array; signatures: ParsedSignature[] } {
  if (Buffer.byteLength(text, 'utf8') > MAX_SIGNED_ANCHOR_BYTES) {
    refuse(source, `larger than ${MAX_SIGNED_ANCHOR_BYTES} bytes`);
  }
  let jws: unknown;
  try {
    jws = JSON.parse(text);
  } catch {
    refuse(source, 'is not JSON (a signed anchor is a JWS in the JSON General Serialization)');
  }
  if (!isRecord(jws)) refuse(source, 'is not a JSON object');
  if (!Array.isArray(jws.signatures) || typeof jws.payload !== 'string') {
    if ('active_key_id' in jws || 'keys' in jws) refuse(source, 'is an unsigned trust anchor: refused');
    if ('signature' in jws)
      refuse(source, 'is a flattened JWS: the General Serialization (signatures[]) is required');
    refuse(source, 'is not a JWS: it needs "payload" and "signatures"');
  }
  if (jws.signatures.length === 0) refuse(source, 'is unsigned (signatures is empty): refused');
  if (jws.signatures.length > 32) refuse(source, 'carries more than 32 signatures');
  const payloadB64 = jws.payload;
  let payload: Uint8Array;
  try {
    payload = b64urlDecode(payloadB64, 'payload');
  } catch (err) {
    refuse(source, (err as Error).message);
  }
  const signatures = jws.signatures.map((s: unknown, i: number): ParsedSignature => {
    const where = `signatures[${i}]`;
    if (!isRecord(s) || typeof s.protected !== 'string' || typeof s.signature !== 'string') {
      refuse(source, `${where} needs "protected" and "signature" strings`);
    }
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(b64urlDecode(s.protected, `${where}.protected`)).toString('utf8'));
    } catch (err) {
      refuse(source, `${where}.protected is not base64url JSON: ${(err as Error).message}`);
    }
    if (!isRecord(header)) refuse(source, `${where}.protected is not a JSON object`);
    if (header.alg !== 'EdDSA') refuse(source, `${where}: alg ${JSON.stringify(header.alg)} is not EdDSA`);
    if (typeof header.kid !== 'string' || !HEX64.test(header.kid)) {
      refuse(source, `${where}: kid must be 64 lowercase hex characters (SHA-256 of the raw public key)`);
    }
    // RFC 7515 §4.1.11: a critical extension rotor does not understand makes the JWS invalid.
    if (header.crit !== undefined)
      refuse(source, `${where}: crit ${JSON.stringify(header.crit)} is not understood`);
    if (header.b64 !== undefined) refuse(source, `${where}: b64 is not supported`);
    if (isRecord(s.header) && ('alg' in s.header || 'kid' in s.header)) {
      refuse(source, `${where}: alg and kid belong in the protected header`);
    }
    let signature: Uint8Array;
    try {
      signature = b64urlDecode(s.signature, `${where}.signature`);
    } catch (err) {
      refuse(source, (err as Error).message);
    }
    return {
      kid: header.kid,
      signingInput: Buffer.from(`${s.protected}.${payloadB64}`, 'ascii'),
      signature,
    };
  });
  return { payload, signatures };
}

/** Reads and checks the payload's fields; nothing in it is trusted until the signatures are. */
export function validateSignedAnchorPayload(value: unknown, source = 'signed anchor'): SignedAnchorPayload {
  if (!isRecord(value)) refuse(source, 'payload is not a JSON object');
  const document = validateTrustAnchor(value);
  if (typeof value.identity !== 'string' || value.identity === '')
    refuse(source, 'payload field identity is missing');
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 1) {
    refuse(source, 'payload field version must be a positive integer');
  }
  for (const field of ['issued_at', 'expires_at'] as const) {
    if (typeof value[field] !== 'string' || typeof parseTimestamp(value[field] as string) === 'string') {
      refuse(source, `payload field ${field} must be a timestamp`);
    }
  }
  readRoot(value.root, source);
  const rk = value.revocation_key;
  if (rk !== undefined) {
    if (!isRecord(rk) || typeof rk.key_id !== 'string' || typeof rk.public_key !== 'string') {
      refuse(source, 'payload field revocation_key needs key_id and public_key');
    }
    let pk: Uint8Array;
    try {
      pk = b64urlDecode(rk.public_key, 'revocation_key.public_key');
    } catch (err) {
      refuse(source, (err as Error).message);
    }
    if (publicKeyProblem(pk) !== null || keyIdOf(pk) !== rk.key_id) {
      refuse(source, 'payload field revocation_key: key_id is not the SHA-256 of a valid public_key');
    }
  }
  return { ...(value as object), ...document } as SignedAnchorPayload;
}

function readRoot(value: unknown, source: string): RootSet {
  if (!isRecord(value) || !Array.isArray(value.keys))
    refuse(source, 'payload field root needs threshold and keys');
  const keys = value.keys.map((k: unknown, i: number) => {
    if (!isRecord(k) || typeof k.kid !== 'string' || typeof k.public_key !== 'string') {
      refuse(source, `payload field root.keys[${i}] needs kid and public_key`);
    }
    let publicKey: Uint8Array;
    try {
      publicKey = b64urlDecode(k.public_key, `root.keys[${i}].public_key`);
    } catch (err) {
      refuse(source, (err as Error).message);
    }
    if (publicKey.length !== 32) refuse(source, `payload field root.keys[${i}].public_key is not 32 bytes`);
    return { kid: k.kid, publicKey };
  });
  if (
    value.version !== undefined &&
    (!Number.isSafeInteger(value.version) || (value.version as number) < 1)
  ) {
    refuse(source, 'payload field root.version must be a positive integer');
  }
  const root = { threshold: value.threshold as number, keys };
  checkRootSet(root, `${source}: payload field root`);
  return root;
}

function sameRootSet(a: RootSet, b: RootSet): boolean {
  return a.threshold === b.threshold && sameKeys(a, b);
}

function sameKeys(a: RootSet, b: RootSet): boolean {
  if (a.keys.length !== b.keys.length) return false;
  const kids = new Set(a.keys.map((k) => k.kid));
  return b.keys.every((k) => kids.has(k.kid));
}

/**
 * Verifies a signed anchor against the pinned root set. Returns the trusted anchor, or throws
 * naming the first reason it is not trusted: not a JWS, unsigned, signed by no pinned root key,
 * below a threshold, of another identity, expired, or below `minVersion`.
 */
export function verifySignedAnchor(text: string, options: VerifyAnchorOptions): TrustedAnchor {
  const source = options.source ?? 'signed anchor';
  checkRootSet(options.trusted, `${source}: pinned root`);
  const { payload: payloadBytes, signatures } = parseGeneralJws(text, source);
  let payloadJson: unknown;
  try {
    payloadJson = JSON.parse(Buffer.from(payloadBytes).toString('utf8'));
  } catch {
    refuse(source, 'payload is not JSON');
  }
  const payload = validateSignedAnchorPayload(payloadJson, source);
  const named = readRoot(payload.root, source);

  // Every key a signature may name: pinned roots, the roots the payload names, its signing keys.
  const known = new Map<string, Uint8Array>();
  for (const k of options.trusted.keys) known.set(k.kid, k.publicKey);
  for (const k of named.keys) known.set(k.kid, k.publicKey);
  for (const k of payload.keys) known.set(k.key_id.slice('sha256:'.length), b64urlDecode(k.public_key));
  const valid = new Set<string>();
  const unknown: string[] = [];
  for (const s of signatures) {
    const key = known.get(s.kid);
    if (!key) {
      unknown.push(s.kid);
      continue;
    }
    if (!verifyStrict(key, s.signingInput, s.signature)) {
      refuse(source, `the signature by kid ${s.kid} does not verify (the anchor was altered)`);
    }
    valid.add(s.kid);
  }
  const count = (root: RootSet) => root.keys.filter((k) => valid.has(k.kid)).length;
  const pinnedCount = count(options.trusted);
  if (pinnedCount === 0) {
    refuse(
      source,
      `signed by no pinned root key (signers: ${[...valid, ...unknown].map((k) => k.slice(0, 16)).join(', ') || 'none'}): unknown signer`,
    );
  }
  const pinnedThreshold = sameRootSet(options.trusted, named)
    ? Math.max(options.trusted.threshold, named.threshold)
    : options.trusted.threshold;
  if (pinnedCount < pinnedThreshold) {
    refuse(
      source,
      `below threshold: ${pinnedCount} of the pinned root keys signed, ${pinnedThreshold} required`,
    );
  }
  if (!sameRootSet(options.trusted, named) && count(named) < named.threshold) {
    refuse(
      source,
      `root rotation below threshold: ${count(named)} of the new root keys signed, ${named.threshold} required`,
    );
  }
  if (options.rootVersion !== undefined) {
    const namedVersion = rootVersionOf(payload);
    if (namedVersion < options.rootVersion) {
      refuse(source, `names root set ${namedVersion}, below the pinned set ${options.rootVersion}: refused`);
    }
    // The pinner may ask for fewer signatures than the set's own threshold, never get fewer.
    if (
      namedVersion === options.rootVersion &&
      (!sameKeys(options.trusted, named) || named.threshold < options.trusted.threshold)
    ) {
      refuse(
        source,
        `names root set ${namedVersion} with other keys or a lower threshold than the pinned set ${namedVersion}: a new set needs a new version: refused`,
      );
    }
  }
  if (options.identity !== undefined && payload.identity !== options.identity) {
    refuse(source, `is the anchor of identity ${payload.identity}, not ${options.identity}`);
  }
  const expires = parseTimestamp(payload.expires_at);
  const issued = parseTimestamp(payload.issued_at);
  if (typeof expires === 'string' || typeof issued === 'string') refuse(source, 'bad timestamps');
  if (!options.ignoreExpiry && options.now.getTime() >= expires.epochMs) {
    refuse(source, `expired at ${payload.expires_at} (now ${options.now.toISOString()})`);
  }
  if (options.minVersion !== undefined && payload.version < options.minVersion) {
    refuse(source, `version ${payload.version} is lower than ${options.minVersion}: rollback refused`);
  }
  return {
    payload,
    document: validateTrustAnchor(payload),
    version: payload.version,
    issuedAt: new Date(issued.epochMs),
    expiresAt: new Date(expires.epochMs),
    root: named,
    rootVersion: rootVersionOf(payload),
    signedBy: [...valid],
    sha256: sha256Hex(text),
  };
}

/**
 * One link of TUF's root chain (README "Following root rotations"): the anchor that introduced
 * root set `rootVersion`, trusted only when a threshold of `trusted` (the set before it) and of
 * the set it names signed it (`verifySignedAnchor`), it names exactly set `rootVersion`, it is the
 * identity's, and its version is at least `minVersion`. Its own expiry is not checked: links are
 * old by nature; the anchor at the end of the chain is checked for expiry as always. The online
 * verifier's walk and the offline `rotor anchor verify --chain` both trust a link only through here.
 */
export function verifyRootChainLink(
  text: string,
  options: {
    trusted: RootSet;
    rootVersion: number;
    minVersion?: number;
    identity?: string;
    now: Date;
    source: string;
  },
): TrustedAnchor {
  const { rootVersion, ...rest } = options;
  const link = verifySignedAnchor(text, { ...rest, ignoreExpiry: true });
  if (link.rootVersion !== rootVersion) {
    refuse(options.source, `names root set ${link.rootVersion}, not ${rootVersion}: refused`);
  }
  return link;
}

/** The anchor payload of a JWS without checking anything (for display only). */
export function unverifiedAnchorPayload(text: string): unknown {
  const { payload } = parseGeneralJws(text, 'signed anchor');
  return JSON.parse(Buffer.from(payload).toString('utf8'));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
