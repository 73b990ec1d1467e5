/**
 * Key handles of the PKCS#11 custodian are RFC 7512 URIs naming the token and the object id,
 * e.g. `pkcs11:token=rotor-prod;id=%56%ab…;type=private`, so `p11tool` and friends understand
 * them too. rotor sets CKA_ID to the key_id's 32 bytes, so the id in the handle is the key_id.
 */
import { UsageError } from '../errors';

export interface Pkcs11KeyRef {
  tokenLabel: string;
  /** Lowercase hex key_id (also the object's CKA_ID). */
  keyId: string;
}

export function formatPkcs11Handle(ref: Pkcs11KeyRef): string {
  const id = ref.keyId.replace(/../g, (byte) => `%${byte}`);
  return `pkcs11:token=${encodeURIComponent(ref.tokenLabel)};id=${id};type=private`;
}

export function parsePkcs11Handle(handle: string): Pkcs11KeyRef {
  const bad = () =>
    new UsageError(
      `'${handle.slice(0, 200)}' is not a pkcs11 custodian key handle (expected pkcs11:token=…;id=…;type=private)`,
      'PKCS11_HANDLE_INVALID',
    );
  if (!handle.startsWith('pkcs11:')) throw bad();
  const attrs = new Map<string, string>();
  for (const part of handle.slice('pkcs11:'.length).split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw bad();
    attrs.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const token = attrs.get('token');
  const id = attrs.get('id');
  if (token === undefined || id === undefined || !/^(%[0-9a-fA-F]{2}){32}$/.test(id)) throw bad();
  let tokenLabel: string;
  try {
    tokenLabel = decodeURIComponent(token);
  } catch {
    throw bad();
  }
  return { tokenLabel, keyId: id.replace(/%/g, '').toLowerCase() };
}
