/**
 * The one seam between the interop core and key custody: whatever holds a private key
 * (an HSM, a seed file) signs bytes through this interface and nothing else.
 */
export type KeyType = 'software' | 'hsm' | 'tee-sealed';

export interface Signer {
  /** Lowercase hex SHA-256 of the raw 32-byte Ed25519 public key (no prefix). */
  readonly keyId: string;
  /** How the private key is held: written into the signature block's `key_type`. */
  readonly keyType: KeyType;
  /** The raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** A 64-byte Ed25519 signature over `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /**
   * A software key's private key as a node:crypto KeyObject, which node:worker_threads clones to
   * another thread of this process, so the re-sign step's pool of threads signs on every core
   * (src/activities/sign-pool.ts). Absent where the key never leaves its holder (an HSM): the
   * threads then ask this thread to sign.
   */
  readonly threadKey?: unknown;
}
