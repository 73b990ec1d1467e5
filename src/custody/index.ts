/**
 * Opening a custodian from the environment. The PKCS#11 PIN comes from ROTOR_PKCS11_PIN or
 * ROTOR_PKCS11_PIN_FILE (see `pkcs11Config`), never from the command line.
 */
import { resolve } from 'node:path';
import { pkcs11Config } from '../config';
import { EnvironmentError, UsageError } from '../errors';
import { CUSTODIAN_KINDS, type CustodianKind, type KeyCustodian } from './custodian';
import { openPkcs11Custodian } from './pkcs11';
import { isModuleLoaded, loadedSoftHsmConf } from './pkcs11-module';
import { DEFAULT_SOFTWARE_KEY_DIR, openSoftwareCustodian } from './software';

export type {
  CustodianHealth,
  CustodianKind,
  GeneratedKey,
  KeyCustodian,
  KeyDescription,
  TokenFacts,
} from './custodian';
export { CUSTODIAN_KINDS } from './custodian';
export { openPkcs11Custodian, Pkcs11Custodian } from './pkcs11';
export { DEFAULT_SOFTWARE_KEY_DIR, openSoftwareCustodian, SoftwareCustodian } from './software';

type Env = Record<string, string | undefined>;

export function parseCustodianKind(value: string, source = 'custodian'): CustodianKind {
  if ((CUSTODIAN_KINDS as readonly string[]).includes(value)) return value as CustodianKind;
  throw new UsageError(
    `${source} must be one of ${CUSTODIAN_KINDS.join(', ')}, got '${value}'`,
    'CUSTODIAN_KIND',
  );
}

/** ROTOR_CUSTODIAN, default `software`. */
export function custodianKindFromEnv(env: Env = process.env): CustodianKind {
  return parseCustodianKind(env.ROTOR_CUSTODIAN || 'software', 'ROTOR_CUSTODIAN');
}

export function softwareKeyDir(env: Env = process.env): string {
  return resolve(env.ROTOR_SOFTWARE_KEY_DIR || DEFAULT_SOFTWARE_KEY_DIR);
}

export async function openCustodian(kind: CustodianKind, env: Env = process.env): Promise<KeyCustodian> {
  if (kind === 'software') return openSoftwareCustodian({ dir: softwareKeyDir(env) });
  const config = pkcs11Config(env);
  applySoftHsmConf(config.modulePath, env.SOFTHSM2_CONF);
  return openPkcs11Custodian(config);
}

/**
 * SoftHSM2 reads SOFTHSM2_CONF from the process environment once, at C_Initialize. An `env` that
 * names another file can only take effect before the module is loaded in this process.
 */
function applySoftHsmConf(modulePath: string, wanted: string | undefined): void {
  if (!wanted) return;
  if (!isModuleLoaded(modulePath)) {
    process.env.SOFTHSM2_CONF = wanted;
    return;
  }
  const current = loadedSoftHsmConf(modulePath);
  if (current !== wanted) {
    throw new EnvironmentError(
      `pkcs11 custodian: ${modulePath} is already initialised in this process with SOFTHSM2_CONF=${current ?? '(unset)'}; it cannot switch to ${wanted}`,
      'ENV_PKCS11_CONF_CONFLICT',
    );
  }
}
