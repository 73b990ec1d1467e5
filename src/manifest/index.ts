/** The interop core: pure functions over manifest text, keys and records; no I/O. */

export {
  ANCHOR_JWS_TYP,
  MAX_ROOT_CHAIN_STEPS,
  MAX_SIGNED_ANCHOR_BYTES,
  type RootKeyEntry,
  type RootSet,
  rootChainPath,
  rootSetFromPublicKeys,
  rootSetJson,
  rootVersionOf,
  type SignedAnchorPayload,
  sha256Hex,
  signAnchorJws,
  type TrustedAnchor,
  unverifiedAnchorPayload,
  type VerifyAnchorOptions,
  validateSignedAnchorPayload,
  verifyRootChainLink,
  verifySignedAnchor,
} from './anchor-jws';
export {
  Canonicalizer,
  canonicalBytes,
  canonicalize,
  compareCodePoints,
  MAX_CANONICAL_DEPTH,
  pythonFloatRepr,
} from './canonical';
export {
  CborError,
  CborFloat,
  CborMap,
  CborSimple,
  CborTag,
  type CborValue,
  cborToJson,
  decodeCbor,
  encodeCbor,
} from './cbor';
export {
  ALG_ED25519,
  ALG_EDDSA,
  ALG_ML_DSA_65,
  COSE_SIGN_TAG,
  COSE_SIGN1_TAG,
  type CoseEnvelope,
  CoseRefusal,
  type CoseRefusalKind,
  cosePayload,
  decodeEnvelope,
  type ExaminedEnvelope,
  encodeSign1,
  examineEnvelope,
  LABEL,
  looksLikeCose,
  MANIFEST_CONTENT_TYPE,
  MANIFEST_COSE_TYP,
  PAYLOAD_EXCLUDED_MEMBERS,
  protectedHeaderBytes,
  sigStructure1,
} from './cose';
export { type CoseSignResult, parseManifestForCose, signCoseManifest, signCoseRoot } from './cose-sign';
export {
  CRL_META_JWS_TYP,
  type CrlMetaPayload,
  crlBodyOf,
  crlBodySha256,
  MAX_CRL_META_BYTES,
  signCrlMeta,
  type TrustedCrlMeta,
  type VerifyCrlMetaOptions,
  verifyCrlMeta,
} from './crl-meta';
export { publicKeyProblem, signatureProblem, verifyStrict } from './ed25519';
export { formatPath, ManifestError } from './errors';
export {
  attestationBindsManifest,
  attestationManifestHash,
  coseIndexFields,
  indexFieldsOf,
  type ManifestIndexFields,
  manifestIndexFields,
} from './fields';
export {
  deleteMember,
  fromPlain,
  getMember,
  getString,
  isJsonObject,
  type JsonArray,
  JsonNumber,
  type JsonObject,
  type JsonValue,
  MAX_DOCUMENT_CHARS,
  type MemberSpan,
  type ParsedDocument,
  type ParseOptions,
  parseDocument,
  parseJson,
  setMember,
  stringifyJson,
  toPlain,
} from './json';
export {
  b64urlDecode,
  b64urlEncode,
  ed25519Sign,
  ed25519Verify,
  KeyFormatError,
  keyIdOf,
  privateKeyFromSeed,
  publicKeyFromSeed,
  publicKeyObject,
  softwareSigner,
} from './keys';
export { SIGNED_FIELDS, signingPreImage, signingPreImageText } from './preimage';
export {
  CONTEXT_V01,
  CONTEXT_V02,
  type CoseReissueOptions,
  type CoseReissueResult,
  convertV01ToV02,
  type ReissueAs,
  reissueCoseEnvelope,
  reissueV01AsCose,
  reissueV01RootAsCose,
  V01_CONTEXTS,
} from './reissue-cose';
export {
  admissionProblem,
  DECLINE_CODES,
  type DeclineCode,
  decideReissue,
  type ParsedStoredManifest,
  parseStoredCopy,
  parseStoredManifest,
  type RegistryKey,
  type ReissueDecision,
  type ReissueFacts,
  unreadableCode,
} from './reissue-policy';
export {
  type CrlReport,
  crlLines,
  type LineVerdict,
  pythonStrip,
  type RevocationInput,
  type RevocationRecord,
  readCrl,
  revocationLine,
  revocationPreImage,
  signRevocation,
  verifyRevocationLine,
} from './revocation';
export {
  describeSchemaProblems,
  isUuidV7,
  MAX_VALIDITY_MS,
  MIN_VALIDITY_MS,
  manifestSchemaProblems,
  type SchemaProblem,
  type SchemaRule,
} from './schema';
export {
  NON_ED25519_PROFILES,
  type ReissueOptions,
  type ReissueResult,
  reissueDocument,
  reissueManifest,
  type SignatureBlock,
  type SignOptions,
  signManifest,
  uuidv7,
} from './sign';
export type { KeyType, Signer } from './signer';
export {
  formatUtcSeconds,
  parseTimestamp,
  pydanticDatetime,
  pythonIsoformat,
  type Timestamp,
  timestampFromDate,
} from './timestamps';
export {
  buildTrustAnchor,
  type TrustAnchorDocument,
  type TrustAnchorKey,
  type TrustAnchorKeyInput,
  trustedKeysFromAnchor,
  validateTrustAnchor,
} from './trust-anchor';
export {
  checkManifestSignature,
  type SignatureCheck,
  SUPPORTED_MANIFEST_VERSIONS,
  type Verdict,
  type VerificationResult,
  type VerifyContext,
  verifyManifest,
  verifyParsedManifest,
} from './verify';
export {
  type CoseVerdict,
  type CoseVerifyContext,
  type UpstreamResult,
  verifyCoseEnvelope,
} from './verify-cose';
