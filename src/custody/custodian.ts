/**
 * What every key custodian promises: keys are generated and used where the custodian keeps them,
 * and the rest of rotor sees only handles, public keys and `Signer`s. `describe()` turns "the key
 * was made in an HSM and never left it" into facts a preflight can check and an audit can record.
 */

import { CUSTODIAN_KINDS, type CustodianKind } from '../domain';
import { UsageError } from '../errors';
import type { Signer } from '../manifest/signer';

export { CUSTODIAN_KINDS, type CustodianKind };

export interface GeneratedKey {
  /** Opaque to callers: store it in the registry and hand it back to `signer`, `describe`, `destroy`. */
  handle: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** Lowercase hex SHA-256 of `publicKey`. */
  keyId: string;
  label: string;
}

export interface TokenFacts {
  label: string;
  model: string;
  serial: string;
  manufacturer: string;
}

export interface KeyDescription {
  kind: CustodianKind;
  keyId: string;
  handle: string;
  label: string | undefined;
  /** True only when the private key lives behind a PKCS#11 boundary. */
  isHsm: boolean;
  /** CKA_LOCAL: the key pair was generated on the device (not imported). */
  generatedOnDevice: boolean;
  /** CKA_NEVER_EXTRACTABLE: the private key has never been extractable. */
  neverExtractable: boolean;
  /** CKA_ALWAYS_SENSITIVE: the private key has always been sensitive. */
  alwaysSensitive: boolean;
  sensitive: boolean;
  extractable: boolean;
  /** The token holding the key (pkcs11 only). */
  token?: TokenFacts;
  /** The seed file (software only). */
  seedFile?: string;
  /** One plain-language sentence for operators and the audit log. */
  summary: string;
}

export interface CustodianHealth {
  ok: boolean;
  kind: CustodianKind;
  /** One line: what was checked and what is wrong, if anything. */
  detail: string;
  token?: TokenFacts;
  /** pkcs11: whether the token lists the mechanisms rotor needs. */
  mechanisms?: { eddsa: boolean; ecEdwardsKeyPairGen: boolean };
  /** pkcs11: the session pool. */
  sessions?: { size: number; inUse: number; waiting: number };
  /** software: the key folder. */
  folder?: string;
}

export interface KeyCustodian {
  readonly kind: CustodianKind;
  /** Makes a new Ed25519 key pair inside the custodian. Refuses a label already in use. */
  generate(label: string): Promise<GeneratedKey>;
  /** The key made under `label`, if any: lets a retried activity find the key its first try made. */
  lookup(label: string): Promise<GeneratedKey | undefined>;
  /** A Signer for the key; fails naming the key_id when the key is not (or no longer) there. */
  signer(handle: string): Promise<Signer>;
  /** Removes the private key. Destroying a key that is already gone is a no-op, so retries are safe. */
  destroy(handle: string): Promise<void>;
  describe(handle: string): Promise<KeyDescription>;
  /** Never throws: a problem is reported as `ok: false` with a detail line. */
  health(): Promise<CustodianHealth>;
  close(): Promise<void>;
}

/** Labels name keys for people and tools on the custodian's side; keep them short and printable. */
export function checkKeyLabel(label: string): void {
  if (!label || label.length > 128 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new UsageError(
      `key label '${label.slice(0, 40)}' must be 1 to 128 printable characters`,
      'KEY_LABEL_INVALID',
    );
  }
}
