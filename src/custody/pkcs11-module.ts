/**
 * One loaded, initialised PKCS#11 module per library path per process. C_Initialize may run only
 * once per process, and PKCS#11 login state belongs to the process (per token), not to a session,
 * so both are shared here and reference-counted: the last user finalises.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { EnvironmentError, UsageError } from '../errors';

export type Pkcs11 = pkcs11js.PKCS11;
export type Handle = pkcs11js.Handle;

interface LoadedModule {
  p11: Pkcs11;
  users: number;
  /** Tokens this process is logged in to: slot id (hex) → PIN digest and custodians using it. */
  logins: Map<string, { pinDigest: Buffer; users: number }>;
}

const modules = new Map<string, LoadedModule>();

export interface ModuleLease {
  readonly p11: Pkcs11;
  readonly modulePath: string;
  release(): void;
}

export function acquireModule(modulePath: string): ModuleLease {
  let loaded = modules.get(modulePath);
  if (!loaded) {
    if (!existsSync(modulePath)) {
      throw new EnvironmentError(
        `pkcs11 custodian: PKCS#11 module ${modulePath} does not exist: install it or set ROTOR_PKCS11_MODULE`,
        'ENV_PKCS11_MODULE_MISSING',
      );
    }
    const p11 = new pkcs11js.PKCS11();
    try {
      p11.load(modulePath);
    } catch (err) {
      throw new EnvironmentError(
        `pkcs11 custodian: cannot load PKCS#11 module ${modulePath} (${nativeReason(err)}): set ROTOR_PKCS11_MODULE to a PKCS#11 library`,
        'ENV_PKCS11_MODULE_LOAD',
      );
    }
    try {
      // Signing runs on libuv's worker threads, so the library must lock for itself.
      p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new EnvironmentError(
          `pkcs11 custodian: PKCS#11 module ${modulePath} failed to initialise (${nativeReason(err)})`,
          'ENV_PKCS11_INIT',
        );
      }
    }
    loaded = { p11, users: 0, logins: new Map() };
    modules.set(modulePath, loaded);
  }
  loaded.users++;
  const entry = loaded;
  let released = false;
  return {
    p11: entry.p11,
    modulePath,
    release() {
      if (released) return;
      released = true;
      entry.users--;
      if (entry.users === 0) {
        modules.delete(modulePath);
        try {
          entry.p11.C_Finalize();
        } catch {
          // Finalising a module whose token vanished can fail; the process is done with it anyway.
        }
        try {
          entry.p11.close();
        } catch {
          // Finalizing a module that is going away anyway: nothing left to recover or report.
        }
      }
    },
  };
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Logs this process in to the token behind `session`, or joins an existing login. A second
 * custodian on an already logged-in token would otherwise get access without its PIN being
 * checked, so its PIN is compared with the one the token accepted.
 */
export function loginOnce(
  lease: ModuleLease,
  slotKey: string,
  session: Handle,
  pin: string,
  tokenLabel: string,
): () => void {
  const loaded = modules.get(lease.modulePath)!;
  const digest = sha256(pin);
  const existing = loaded.logins.get(slotKey);
  if (existing) {
    if (!timingSafeEqual(existing.pinDigest, digest)) {
      throw new UsageError(
        `pkcs11 custodian (token ${tokenLabel}): the PIN differs from the one this process logged in with: check ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE`,
        'PKCS11_PIN_INCORRECT',
      );
    }
    existing.users++;
  } else {
    try {
      lease.p11.C_Login(session, pkcs11js.CKU_USER, pin);
    } catch (err) {
      const name = ckrName(err);
      if (name !== 'CKR_USER_ALREADY_LOGGED_IN') throw loginError(name, tokenLabel, err);
    }
    loaded.logins.set(slotKey, { pinDigest: digest, users: 1 });
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const login = loaded.logins.get(slotKey);
    // Closing the last session on the token logs the process out; forget the PIN digest with it.
    if (login && --login.users === 0) loaded.logins.delete(slotKey);
  };
}

function loginError(name: string | undefined, tokenLabel: string, err: unknown): Error {
  const where = `pkcs11 custodian (token ${tokenLabel})`;
  switch (name) {
    case 'CKR_PIN_INCORRECT':
    case 'CKR_PIN_INVALID':
    case 'CKR_PIN_LEN_RANGE':
      return new UsageError(
        `${where}: the token refused the PIN (${name}): check ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE`,
        'PKCS11_PIN_INCORRECT',
      );
    case 'CKR_PIN_LOCKED':
    case 'CKR_PIN_EXPIRED':
      return new EnvironmentError(
        `${where}: the user PIN is unusable (${name}): the token's SO must reset it`,
        'ENV_PKCS11_PIN_LOCKED',
      );
    default:
      return new EnvironmentError(`${where}: login failed (${nativeReason(err)})`, 'ENV_PKCS11_LOGIN');
  }
}

/** The CKR_* name of a pkcs11js error, if it is one. */
export function ckrName(err: unknown): string | undefined {
  if (err instanceof Error && /^CKR_[A-Z0-9_]+$/.test(err.message)) return err.message;
  return undefined;
}

/** The first line of a native error, which is all an operator needs (and never holds a PIN). */
export function nativeReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim() || 'unknown error';
}
