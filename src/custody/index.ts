/**
 * Opening a custodian from the process's configuration (src/config.ts, `CustodyConfig`). The
 * PKCS#11 PIN comes from ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE, never from the command line.
 *
 * SOFTHSM2_CONF is not passed here: SoftHSM2's library reads it from the process's environment at
 * C_Initialize and nowhere else, and this module never writes the environment. A process that
 * makes a throwaway token for itself (the test run's global setup, bench/hsm-sign.ts,
 * bench/rotation-resign.ts) sets it once, at its start, before any custodian is opened; every other
 * process inherits it from whoever started it (docs/CONFIGURATION.md).
 */
import type { CustodyConfig } from '../config';
import type { CustodianKind, KeyCustodian } from './custodian';
import { openPkcs11Custodian } from './pkcs11';
import { openSoftwareCustodian } from './software';

export { parseCustodianKind } from '../config';
export type {
  CustodianHealth,
  CustodianKind,
  GeneratedKey,
  KeyCustodian,
  KeyDescription,
  TokenFacts,
} from './custodian';
export { CUSTODIAN_KINDS } from './custodian';
export { openPkcs11Custodian, type Pkcs11Config, Pkcs11Custodian } from './pkcs11';
export { DEFAULT_SOFTWARE_KEY_DIR, openSoftwareCustodian, SoftwareCustodian } from './software';

/** Opens the custodian of `kind` as `custody` configures it. */
export async function openCustodian(
  kind: CustodianKind,
  custody: Pick<CustodyConfig, 'softwareKeyDir' | 'pkcs11'>,
): Promise<KeyCustodian> {
  if (kind === 'software') return openSoftwareCustodian({ dir: custody.softwareKeyDir });
  return openPkcs11Custodian(custody.pkcs11);
}

/** Opens each custodian kind once, on first use, and closes them all at the end. */
export function custodianCache(custody: Pick<CustodyConfig, 'softwareKeyDir' | 'pkcs11'>) {
  const opened = new Map<CustodianKind, Promise<KeyCustodian>>();
  return {
    get(kind: CustodianKind): Promise<KeyCustodian> {
      let custodian = opened.get(kind);
      if (!custodian) {
        custodian = openCustodian(kind, custody);
        // A failed open is not cached: the next activity attempt tries again.
        custodian.catch(() => opened.delete(kind));
        opened.set(kind, custodian);
      }
      return custodian;
    },
    async closeAll(): Promise<void> {
      // A custodian that failed to open has nothing to close; its error went to the activity that asked.
      for (const c of opened.values()) await (await c.catch(() => undefined))?.close();
      opened.clear();
    },
  };
}
