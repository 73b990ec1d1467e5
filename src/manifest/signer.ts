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
}
