/**
 * Manifest v0.2: the COSE envelope (docs/upstream/agent-manifest-cose-envelope-v0.2.md).
 * A signed manifest is a tagged COSE_Sign1 (18) over the payload, the reference SDK's canonical
 * JSON of the manifest without `signature`, `attestation`, `transparency_log_entry` and
 * `hitl_record.approvals` (§4; docs/DOMAIN.md fact 14). The protected header is read from the bytes as
 * received and never re-encoded (ADR-0013); rotor encodes its own deterministically, so for the
 * same manifest and key its envelope equals the SDK's byte for byte (Ed25519 is deterministic).
 * COSE_Sign (98, hybrid Ed25519 + ML-DSA-65, §2.1) is read, never produced or verified.
 */
import { Canonicalizer, MAX_CANONICAL_DEPTH } from './canonical';
import { CborError, CborMap, CborTag, type CborValue, decodeCbor, encodeCbor } from './cbor';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, type JsonValue, parseDocument } from './json';

export const COSE_SIGN1_TAG = 18;
export const COSE_SIGN_TAG = 98;
export const MANIFEST_CONTENT_TYPE = 'application/agent-manifest+json';
export const MANIFEST_COSE_TYP = 'application/agent-manifest+cose';
/** The producer's Ed25519 code point (RFC 9864, ADR-0014); -8 (EdDSA) stays verifiable. */
export const ALG_ED25519 = -19;
export const ALG_EDDSA = -8;
export const ALG_ML_DSA_65 = -49;

/** COSE header labels (RFC 9052 §3.1, RFC 9596, RFC 9943) and the spec's string labels (§4.1). */
export const LABEL = {
  alg: 1,
  crit: 2,
  contentType: 3,
  kid: 4,
  typ: 16,
  receipts: 394,
  attestation: 'agent-manifest-attestation',
  approvals: 'agent-manifest-approvals',
} as const;

/** Labels whose meaning rotor enforces; a `crit` naming any other is refused (§3). */
const UNDERSTOOD_LABELS: ReadonlySet<CborValue> = new Set<CborValue>([
  LABEL.alg,
  LABEL.contentType,
  LABEL.kid,
  LABEL.typ,
]);

/** The members the payload never holds (§4): they attach after signing, or are the signature. */
export const PAYLOAD_EXCLUDED_MEMBERS: readonly string[] = [
  'signature',
  'attestation',
  'transparency_log_entry',
];

export interface CoseSignatureEntry {
  protectedBytes: Uint8Array;
  protectedHeader: CborMap;
  unprotected: CborMap;
  signature: Uint8Array;
}

/** A decoded envelope: structure only, nothing checked beyond well-formedness. */
export interface CoseEnvelope {
  tag: typeof COSE_SIGN1_TAG | typeof COSE_SIGN_TAG;
  protectedBytes: Uint8Array;
  protectedHeader: CborMap;
  unprotected: CborMap;
  /** null when detached (which this profile refuses when examined). */
  payload: Uint8Array | null;
  /** COSE_Sign1's signature. */
  signature: Uint8Array | null;
  /** COSE_Sign's entries. */
  signatures: CoseSignatureEntry[];
}

/** Which upstream verdict a refusal maps to (cose-envelope-v0.2 §6). */
export type CoseRefusalKind = 'MISMATCH' | 'INCOMPATIBLE_VERSION' | 'UNVERIFIABLE';

export class CoseRefusal extends ManifestError {
  constructor(
    readonly kind: CoseRefusalKind,
    what: string,
    where: { source?: string; manifestId?: string } = {},
    readonly keyId: string | null = null,
  ) {
    super(what, where);
  }
}

/** Whether bytes look like a CBOR tag 18 or 98 (a COSE envelope rather than JSON text). */
export function looksLikeCose(bytes: Uint8Array): boolean {
  const b = bytes[0];
  return b === 0xd2 || (b === 0xd8 && bytes[1] === COSE_SIGN_TAG) || b === 0x84;
}

/** Parses the CBOR and the COSE structure; throws CoseRefusal (MISMATCH) when it is not one. */
export function decodeEnvelope(bytes: Uint8Array, source?: string): CoseEnvelope {
  const where = source === undefined ? {} : { source };
  let item: CborValue;
  try {
    item = decodeCbor(bytes, { what: 'COSE envelope', ...where });
  } catch (err) {
    if (err instanceof CborError) throw new CoseRefusal('MISMATCH', stripSource(err.message, source), where);
    throw err;
  }
  if (!(item instanceof CborTag)) {
    throw new CoseRefusal(
      'MISMATCH',
      'not a tagged COSE structure: an untagged COSE_Sign1/COSE_Sign is refused, not inferred (cose-envelope-v0.2 §2)',
      where,
    );
  }
  if (item.tag !== COSE_SIGN1_TAG && item.tag !== COSE_SIGN_TAG) {
    throw new CoseRefusal(
      'MISMATCH',
      `CBOR tag ${item.tag} is neither COSE_Sign1 (18) nor COSE_Sign (98) (cose-envelope-v0.2 §2)`,
      where,
    );
  }
  const arr = item.value;
  const name = item.tag === COSE_SIGN1_TAG ? 'COSE_Sign1' : 'COSE_Sign';
  if (!Array.isArray(arr) || arr.length !== 4) {
    throw new CoseRefusal('MISMATCH', `${name} must be a four-element array (RFC 9052 §4.2)`, where);
  }
  const [prot, unprot, payload, last] = arr as [CborValue, CborValue, CborValue, CborValue];
  const protectedBytes = bstr(prot, `${name} protected header`, where);
  const protectedHeader = headerMap(protectedBytes, `${name} protected header`, where);
  if (!(unprot instanceof CborMap)) {
    throw new CoseRefusal('MISMATCH', `${name} unprotected header is not a map`, where);
  }
  if (payload !== null && !(payload instanceof Uint8Array)) {
    throw new CoseRefusal('MISMATCH', `${name} payload is neither a byte string nor nil`, where);
  }
  const envelope: CoseEnvelope = {
    tag: item.tag,
    protectedBytes,
    protectedHeader,
    unprotected: unprot,
    payload,
    signature: null,
    signatures: [],
  };
  if (item.tag === COSE_SIGN1_TAG) {
    envelope.signature = bstr(last, 'COSE_Sign1 signature', where);
    return envelope;
  }
  if (!Array.isArray(last) || last.length === 0) {
    throw new CoseRefusal('MISMATCH', 'COSE_Sign signatures must be a non-empty array', where);
  }
  last.forEach((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 3) {
      throw new CoseRefusal('MISMATCH', `COSE_Sign signature ${i} is not a three-element array`, where);
    }
    const [p, u, s] = entry as [CborValue, CborValue, CborValue];
    const pb = bstr(p, `COSE_Sign signature ${i} protected header`, where);
    if (!(u instanceof CborMap)) {
      throw new CoseRefusal('MISMATCH', `COSE_Sign signature ${i} unprotected header is not a map`, where);
    }
    envelope.signatures.push({
      protectedBytes: pb,
      protectedHeader: headerMap(pb, `COSE_Sign signature ${i} protected header`, where),
      unprotected: u,
      signature: bstr(s, `COSE_Sign signature ${i}`, where),
    });
  });
  return envelope;
}

function stripSource(message: string, source: string | undefined): string {
  return source !== undefined && message.startsWith(`${source}: `)
    ? message.slice(source.length + 2)
    : message;
}

function bstr(v: CborValue, what: string, where: { source?: string }): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new CoseRefusal('MISMATCH', `${what} is not a byte string`, where);
  return v;
}

/** A serialized header: the empty byte string is the empty map (RFC 9052 §3). */
function headerMap(bytes: Uint8Array, what: string, where: { source?: string }): CborMap {
  if (bytes.length === 0) return new CborMap();
  let v: CborValue;
  try {
    v = decodeCbor(bytes, { what, ...where });
  } catch (err) {
    if (err instanceof CborError)
      throw new CoseRefusal('MISMATCH', stripSource(err.message, where.source), where);
    throw err;
  }
  if (!(v instanceof CborMap)) throw new CoseRefusal('MISMATCH', `${what} is not a map`, where);
  return v;
}

/** The canonical protected header rotor signs under: {1: -19, 3: content type, 4: kid, 16: typ}. */
export function protectedHeaderBytes(kid: Uint8Array, alg: number = ALG_ED25519): Uint8Array {
  return encodeCbor(
    CborMap.of([
      [LABEL.alg, alg],
      [LABEL.contentType, MANIFEST_CONTENT_TYPE],
      [LABEL.kid, kid],
      [LABEL.typ, MANIFEST_COSE_TYP],
    ]),
  );
}

/** The bytes a COSE_Sign1 signature covers (RFC 9052 §4.4), with empty external_aad. */
export function sigStructure1(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedBytes, new Uint8Array(0), payload]);
}

/** A tagged COSE_Sign1, deterministic CBOR. */
export function encodeSign1(parts: {
  protectedBytes: Uint8Array;
  unprotected?: CborMap;
  payload: Uint8Array;
  signature: Uint8Array;
}): Uint8Array {
  return encodeCbor(
    new CborTag(COSE_SIGN1_TAG, [
      parts.protectedBytes,
      parts.unprotected ?? new CborMap(),
      parts.payload,
      parts.signature,
    ]),
  );
}

export interface PayloadResult {
  payload: Uint8Array;
  /** Members that had a value and stay out of the payload (`hitl_record.approvals` named so). */
  left: string[];
}

/**
 * The v0.2 payload of a manifest document (§4): its canonical JSON without `signature`,
 * `attestation`, `transparency_log_entry` and `hitl_record.approvals`.
 */
export function cosePayload(manifest: JsonObject, source?: string): PayloadResult {
  const copy: JsonObject = new Map(manifest);
  const left: string[] = [];
  for (const key of PAYLOAD_EXCLUDED_MEMBERS) {
    const v = copy.get(key);
    if (v !== undefined && v !== null) left.push(key);
    copy.delete(key);
  }
  const hitl = copy.get('hitl_record');
  if (isJsonObject(hitl) && hitl.has('approvals')) {
    const approvals = hitl.get('approvals');
    if (Array.isArray(approvals) ? approvals.length > 0 : approvals !== null)
      left.push('hitl_record.approvals');
    const h = new Map(hitl);
    h.delete('approvals');
    copy.set('hitl_record', h);
  }
  const text = new Canonicalizer(source).value(copy, 0);
  return { payload: Buffer.from(text, 'utf8'), left };
}

/** What rotor reads out of an envelope once its structure, headers and payload pass §6 steps 1-4. */
export interface ExaminedEnvelope {
  envelope: CoseEnvelope;
  /** The signing key: `kid` of the (Ed25519) signer, lowercase hex. */
  keyId: string;
  alg: number;
  payload: Uint8Array;
  /** The payload as a lossless JSON object. */
  manifest: JsonObject;
  manifestId: string;
  version: string;
  /** A COSE_Sign (hybrid Ed25519 + ML-DSA-65), read with `allowHybrid`: never verified or re-signed here. */
  hybrid: boolean;
}

/**
 * §6 steps 1-4: tag, headers (typ, content type, crit, alg present and protected, kid), payload
 * inline and strict JSON (no duplicate names, no NaN/Infinity, bounded nesting), `version` 0.2,
 * `crypto_profile` against `alg`. Throws CoseRefusal naming the upstream verdict.
 * A COSE_Sign passes steps 1-3 and is then UNVERIFIABLE (rotor has no ML-DSA-65).
 */
export function examineEnvelope(
  bytes: Uint8Array,
  source?: string,
  opts: { allowHybrid?: boolean } = {},
): ExaminedEnvelope {
  const where = source === undefined ? {} : { source };
  const envelope = decodeEnvelope(bytes, source);
  const sign1 = envelope.tag === COSE_SIGN1_TAG;
  checkBodyHeaders(envelope.protectedHeader, envelope.unprotected, where);
  let alg: number;
  let kid: Uint8Array;
  if (sign1) {
    ({ alg, kid } = signerHeaders(envelope.protectedHeader, envelope.unprotected, 'protected header', where));
  } else {
    const entries = envelope.signatures.map((s, i) =>
      signerHeaders(s.protectedHeader, s.unprotected, `COSE_Sign signature ${i} protected header`, where),
    );
    const ed = entries.find((e) => isEd25519(e.alg));
    ({ alg, kid } = ed ?? entries[0]!);
  }
  if (envelope.payload === null) {
    throw new CoseRefusal(
      'MISMATCH',
      'the payload is detached (nil); this profile carries it inline (§4)',
      where,
    );
  }
  const { manifest, manifestId, version } = readPayload(envelope.payload, where);
  const keyId = Buffer.from(kid).toString('hex');
  const withId = { ...where, manifestId };
  if (!sign1 && opts.allowHybrid === true) {
    return { envelope, keyId, alg, payload: envelope.payload, manifest, manifestId, version, hybrid: true };
  }
  if (!sign1) {
    const algs = envelope.signatures.map((s) => s.protectedHeader.get(LABEL.alg));
    const distinct = new Set(algs.map((a) => (isEd25519(a) ? 'Ed25519' : String(a))));
    if (distinct.size !== envelope.signatures.length) {
      throw new CoseRefusal(
        'MISMATCH',
        'COSE_Sign carries one algorithm signed twice, not a hybrid signature (-8 and -19 are both Ed25519, §3)',
        withId,
        keyId,
      );
    }
    throw new CoseRefusal(
      'UNVERIFIABLE',
      `hybrid COSE_Sign (${[...distinct].join(' + ')}): rotor cannot verify or produce ML-DSA-65 and never falls back to the Ed25519 entry alone (§2.1)`,
      withId,
      keyId,
    );
  }
  if (alg === ALG_ML_DSA_65) {
    throw new CoseRefusal(
      'UNVERIFIABLE',
      'alg -49 (ML-DSA-65): rotor cannot verify ML-DSA-65 (§6 step 6)',
      withId,
      keyId,
    );
  }
  if (!isEd25519(alg)) {
    throw new CoseRefusal(
      'MISMATCH',
      `alg ${alg} is not an algorithm of this profile (-19, -8 or -49)`,
      withId,
      keyId,
    );
  }
  const profile = manifest.get('crypto_profile');
  if (profile === 'post-quantum' || (typeof profile === 'string' && profile.startsWith('hybrid'))) {
    throw new CoseRefusal(
      'MISMATCH',
      `crypto_profile "${profile}" with only an Ed25519 signature is a downgrade (§6 step 4)`,
      withId,
      keyId,
    );
  }
  return { envelope, keyId, alg, payload: envelope.payload, manifest, manifestId, version, hybrid: false };
}

function isEd25519(alg: CborValue | undefined): boolean {
  return alg === ALG_ED25519 || alg === ALG_EDDSA;
}

function checkBodyHeaders(prot: CborMap, unprot: CborMap, where: { source?: string }): void {
  const typ = prot.get(LABEL.typ);
  if (typ !== MANIFEST_COSE_TYP) {
    throw new CoseRefusal(
      'MISMATCH',
      typ === undefined
        ? `the protected header has no typ (16); it must be "${MANIFEST_COSE_TYP}" (§3)`
        : `typ ${describe(typ)} is not "${MANIFEST_COSE_TYP}" (§3, §7: no aliases)`,
      where,
    );
  }
  const ct = prot.get(LABEL.contentType);
  if (ct !== MANIFEST_CONTENT_TYPE) {
    throw new CoseRefusal(
      'MISMATCH',
      `content type (3) ${ct === undefined ? 'is absent' : describe(ct)}; it must be "${MANIFEST_CONTENT_TYPE}" (§3)`,
      where,
    );
  }
  checkCrit(prot, 'protected header', where);
  if (unprot.has(LABEL.crit)) {
    throw new CoseRefusal(
      'MISMATCH',
      'crit (2) in the unprotected header (it is only meaningful protected)',
      where,
    );
  }
}

function checkCrit(prot: CborMap, what: string, where: { source?: string }): void {
  const crit = prot.get(LABEL.crit);
  if (crit === undefined) return;
  if (!Array.isArray(crit) || crit.length === 0) {
    throw new CoseRefusal('MISMATCH', `crit (2) in the ${what} is not a non-empty array of labels`, where);
  }
  for (const label of crit) {
    if (!UNDERSTOOD_LABELS.has(label)) {
      throw new CoseRefusal(
        'MISMATCH',
        `crit (2) in the ${what} names label ${describe(label)}, which rotor does not understand (§3)`,
        where,
      );
    }
  }
}

function signerHeaders(
  prot: CborMap,
  unprot: CborMap,
  what: string,
  where: { source?: string },
): { alg: number; kid: Uint8Array } {
  if (unprot.has(LABEL.alg)) {
    throw new CoseRefusal('MISMATCH', 'alg (1) in an unprotected header is refused, never read (§3)', where);
  }
  checkCrit(prot, what, where);
  const alg = prot.get(LABEL.alg);
  if (alg === undefined) throw new CoseRefusal('MISMATCH', `the ${what} has no alg (1) (§6 step 2)`, where);
  if (typeof alg !== 'number')
    throw new CoseRefusal('MISMATCH', `alg (1) ${describe(alg)} is not an integer`, where);
  const kid = prot.get(LABEL.kid);
  if (!(kid instanceof Uint8Array) || kid.length !== 32) {
    throw new CoseRefusal(
      'MISMATCH',
      `the ${what} has no kid (4) that is a 32-byte SHA-256 of the public key (§3)`,
      where,
    );
  }
  return { alg, kid };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function readPayload(
  payload: Uint8Array,
  where: { source?: string },
): { manifest: JsonObject; manifestId: string; version: string } {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    throw new CoseRefusal('MISMATCH', 'the payload is not UTF-8 JSON', where);
  }
  let root: JsonValue;
  try {
    root = parseDocument(text, 'payload', {
      rejectDuplicateKeys: true,
      maxDepth: MAX_CANONICAL_DEPTH + 1,
    }).root;
  } catch (err) {
    if (err instanceof ManifestError) throw new CoseRefusal('MISMATCH', err.message, where);
    throw err;
  }
  if (!isJsonObject(root)) throw new CoseRefusal('MISMATCH', 'the payload is not a JSON object', where);
  const id = root.get('manifest_id');
  const manifestId = typeof id === 'string' && id !== '' ? id : undefined;
  const withId = manifestId === undefined ? where : { ...where, manifestId };
  const version = root.get('version');
  if (typeof version !== 'string') {
    throw new CoseRefusal('MISMATCH', 'the payload has no version string', withId);
  }
  if (version !== '0.2') {
    throw new CoseRefusal(
      'INCOMPATIBLE_VERSION',
      `payload version ${JSON.stringify(version)} inside a COSE envelope: the envelope carries version 0.2 (§6 step 3)`,
      withId,
    );
  }
  if (manifestId === undefined)
    throw new CoseRefusal('MISMATCH', 'the payload has no manifest_id string', where);
  return { manifest: root, manifestId, version };
}

function describe(v: CborValue | undefined): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return `h'${Buffer.from(v).toString('hex')}'`;
  return 'of the wrong type';
}
